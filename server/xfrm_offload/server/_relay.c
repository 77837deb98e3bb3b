/* The Unix-socket relay's byte pump (peers.py): splice(2) from one socket through a pipe
 * into another until end of file or an error, with the GIL released for the whole loop.
 *
 * Why C: the same loop written with os.splice gives the GIL back and takes it again
 * around every call, and each take waits for the event loop's thread, which holds it
 * while it serves gRPC; measured, that contention cost more CPU per packet than the
 * relay's own system calls. Here the thread never touches the interpreter until the
 * connection's direction is done. The bytes never enter user space either.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* splice */
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* pump(src, dst, pipe_r, pipe_w, chunk) -> (moved, error): error 0 at end of file, else
 * the errno that stopped it. The pipe is empty on entry and on a 0 return. */
static PyObject *pump(PyObject *self, PyObject *args) {
    (void)self;
    int src, dst, pipe_r, pipe_w;
    Py_ssize_t chunk;
    if (!PyArg_ParseTuple(args, "iiiin", &src, &dst, &pipe_r, &pipe_w, &chunk)) {
        return NULL;
    }
    if (chunk <= 0) {
        PyErr_SetString(PyExc_ValueError, "chunk must be positive");
        return NULL;
    }
    long long moved = 0;
    int error = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        ssize_t got = splice(src, NULL, pipe_w, NULL, (size_t)chunk, SPLICE_F_MOVE);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            error = errno;
            break;
        }
        if (got == 0) {
            break;
        }
        while (got > 0) { /* drain the pipe before the next read: it never fills */
            ssize_t put = splice(pipe_r, NULL, dst, NULL, (size_t)got, SPLICE_F_MOVE);
            if (put < 0) {
                if (errno == EINTR) {
                    continue;
                }
                error = errno;
                break;
            }
            got -= put;
            moved += put;
        }
        if (error != 0) {
            break;
        }
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("Li", moved, error);
}

static PyMethodDef methods[] = {
    {"pump", pump, METH_VARARGS,
     "pump(src, dst, pipe_r, pipe_w, chunk) -> (moved, errno): splice until end of file"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_relay", "The Unix relay's splice pump, without the GIL.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__relay(void) { return PyModule_Create(&module); }
