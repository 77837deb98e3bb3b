/* _wireio: many wire frames per system call (recvmmsg / sendmmsg), for realif.py.
 *
 * Python's socket module has neither call, and one recvfrom or sendto per ESP frame was
 * about 3 us of the NIC's per-packet cost. recv_frames reads what is ready on a
 * nonblocking socket (an AF_PACKET socket on a link, or a connected UDP cable) in
 * batches of BATCH; on a packet socket it skips our own transmissions and anything but
 * IPv4 / IPv6, as realif's Python reader does. send_frames sends a list of frames: on a
 * packet socket each to the link address given, with its EtherType from the IP version.
 * Both release the GIL while in the kernel. Built by hatch_build.py (-Wall -Wextra
 * -Werror, system and Python headers only); without it realif.py does one call a frame.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64

/* recv_frames(fd, limit, size, packet) -> (frames, truncated, errno)
 * Up to ``limit`` frames of at most ``size`` bytes; stops at EAGAIN (errno 0) or at
 * another error (its errno, after the frames read before it). ``packet``: the socket
 * is AF_PACKET (filter outgoing and non-IP frames). ``truncated`` counts frames larger
 * than ``size``, dropped. */
static PyObject *recv_frames(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, packet;
    Py_ssize_t limit, size;
    if (!PyArg_ParseTuple(args, "innp", &fd, &limit, &size, &packet))
        return NULL;
    if (limit < 0 || size <= 0 || size > 65536) {
        PyErr_SetString(PyExc_ValueError, "limit >= 0 and size 1..65536");
        return NULL;
    }
    char *buffers = malloc((size_t)BATCH * (size_t)size);
    struct mmsghdr *msgs = calloc(BATCH, sizeof(*msgs));
    struct iovec *iov = calloc(BATCH, sizeof(*iov));
    struct sockaddr_ll *names = calloc(BATCH, sizeof(*names));
    PyObject *frames = PyList_New(0);
    if (buffers == NULL || msgs == NULL || iov == NULL || names == NULL || frames == NULL) {
        free(buffers);
        free(msgs);
        free(iov);
        free(names);
        Py_XDECREF(frames);
        return PyErr_NoMemory();
    }
    Py_ssize_t got = 0, truncated = 0;
    int error = 0;
    while (got < limit) {
        unsigned int want = (unsigned int)(limit - got < BATCH ? limit - got : BATCH);
        for (unsigned int i = 0; i < want; i++) {
            iov[i].iov_base = buffers + (size_t)i * (size_t)size;
            iov[i].iov_len = (size_t)size;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (packet) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
            }
        }
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                error = errno;
            break;
        }
        for (int i = 0; i < n; i++) {
            got++;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                truncated++;
                continue;
            }
            if (packet) {
                unsigned proto = ntohs(names[i].sll_protocol);
                if (names[i].sll_pkttype == PACKET_OUTGOING ||
                    (proto != ETHERTYPE_IP && proto != ETHERTYPE_IPV6))
                    continue;
            }
            PyObject *frame = PyBytes_FromStringAndSize(iov[i].iov_base, msgs[i].msg_len);
            if (frame == NULL || PyList_Append(frames, frame) != 0) {
                Py_XDECREF(frame);
                Py_DECREF(frames);
                frames = NULL;
                break;
            }
            Py_DECREF(frame);
        }
        if (frames == NULL || (unsigned int)n < want)
            break;
    }
    free(buffers);
    free(msgs);
    free(iov);
    free(names);
    if (frames == NULL)
        return NULL;
    return Py_BuildValue("Nni", frames, truncated, error);
}

/* send_frames(fd, frames, ifindex, address) -> (sent, failed)
 * Every frame of ``frames`` (a list of bytes) once: ifindex > 0 sends each on a packet
 * socket to link address ``address`` with the EtherType of its IP version; 0 sends on a
 * connected socket. A frame the kernel refuses (queue full, link down, too big) is
 * counted failed and the rest still go. */
static PyObject *send_frames(PyObject *self, PyObject *args)
{
    (void)self;
    int fd, ifindex;
    PyObject *list;
    Py_buffer address;
    if (!PyArg_ParseTuple(args, "iO!iy*", &fd, &PyList_Type, &list, &ifindex, &address))
        return NULL;
    if (address.len > 8) {
        PyBuffer_Release(&address);
        PyErr_SetString(PyExc_ValueError, "a link address has at most 8 bytes");
        return NULL;
    }
    /* A snapshot: the GIL is released around each sendmmsg, and another thread could
     * change the caller's list meanwhile; the tuple holds every frame until the end. */
    PyObject *frames = PyList_AsTuple(list);
    if (frames == NULL) {
        PyBuffer_Release(&address);
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(frames);
    for (Py_ssize_t i = 0; i < total; i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(frames, i))) {
            Py_DECREF(frames);
            PyBuffer_Release(&address);
            PyErr_SetString(PyExc_TypeError, "frames must be bytes");
            return NULL;
        }
    }
    struct sockaddr_ll names[2];
    memset(names, 0, sizeof(names));
    for (int v = 0; v < 2; v++) {
        names[v].sll_family = AF_PACKET;
        names[v].sll_protocol = htons(v ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
        names[v].sll_ifindex = ifindex;
        names[v].sll_halen = (unsigned char)address.len;
        memcpy(names[v].sll_addr, address.buf, (size_t)address.len);
    }
    PyBuffer_Release(&address);
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    Py_ssize_t sent = 0, failed = 0, next = 0;
    while (next < total) {
        unsigned int want = (unsigned int)(total - next < BATCH ? total - next : BATCH);
        for (unsigned int i = 0; i < want; i++) {
            PyObject *frame = PyTuple_GET_ITEM(frames, next + (Py_ssize_t)i);
            char *data = PyBytes_AS_STRING(frame);
            iov[i].iov_base = data;
            iov[i].iov_len = (size_t)PyBytes_GET_SIZE(frame);
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (ifindex > 0) {
                int v6 = iov[i].iov_len > 0 && ((unsigned char)data[0] >> 4) == 6;
                msgs[i].msg_hdr.msg_name = &names[v6];
                msgs[i].msg_hdr.msg_namelen = sizeof(names[v6]);
            }
        }
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = sendmmsg(fd, msgs, want, 0);
        Py_END_ALLOW_THREADS
        if (n <= 0) { /* the first one was refused: count it and go on with the rest */
            failed++;
            next++;
            continue;
        }
        sent += n;
        next += n;
    }
    Py_DECREF(frames);
    return Py_BuildValue("nn", sent, failed);
}

static PyMethodDef methods[] = {
    {"recv_frames", recv_frames, METH_VARARGS,
     "recv_frames(fd, limit, size, packet) -> (frames, truncated, errno)"},
    {"send_frames", send_frames, METH_VARARGS,
     "send_frames(fd, frames, ifindex, address) -> (sent, failed)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wireio", "recvmmsg / sendmmsg for wire frames.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wireio(void)
{
    return PyModule_Create(&module);
}
