/* _packetwire: PacketStream's packed batch form in C, for packetwire.py.
 *
 * At 64 x 1400 B the protobuf runtime's parse of a request (and the list of its data)
 * and packetwire's Python build of the packed answer took about 25 us of CPU per
 * message, 0.6 of what the native ESP encap of the same packets costs; these two
 * functions, the per-packet part of the common shapes, about 10 (bench/packetwire.py):
 *
 * decode_batch(raw) reads a PacketStreamRequest whose only fields are dev (1), direction
 * (2) and a batch (4) of data entries (PacketBatch field 1): (dev, direction, data) as
 * the runtime would give them, or None for anything else (packets, handles, seqs,
 * unknown fields, a non-canonical tag, bad UTF-8, truncation, a varint of more than 10
 * bytes), which packetwire then hands to the runtime for its exact answer or error.
 *
 * encode_batch_result(verdicts, data, tail) builds the PacketStreamResponse whose batch
 * (field 2) holds the packed verdicts (field 1, omitted when empty), one data entry
 * (field 2) per item and then ``tail``, fields 3-5 already encoded: the bytes the
 * runtime's SerializeToString makes. One allocation, one copy of each packet; the copy
 * of a large answer runs without the GIL.
 *
 * Neither writes a buffer it did not allocate. Built by hatch_build.py (-Wall -Wextra
 * -Werror, Python headers only); without it packetwire.py runs its Python reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Tags, each a single byte: (field << 3) | wire type; 0 varint, 2 length-delimited. */
#define TAG_DEV 0x0A        /* PacketStreamRequest.dev = 1, string */
#define TAG_DIRECTION 0x10  /* PacketStreamRequest.direction = 2, enum */
#define TAG_BATCH 0x22      /* PacketStreamRequest.batch = 4, PacketBatch */
#define TAG_DATA 0x0A       /* PacketBatch.data = 1, PacketStreamResponse's batch.verdict = 1 */
#define TAG_RESULT 0x12     /* PacketStreamResponse.batch = 2, PacketBatchResult.data = 2 */

/* Answers at least this large are copied without the GIL: below it the copy takes less
 * than about 50 us, not worth letting another thread in. */
#define NOGIL_BYTES (1 << 20)

/* The varint at *p (at most 10 bytes, as the runtime reads them: bits past 64 are
 * dropped) and *p moved past it; -1 if it runs past end or is longer. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (int i = 0; i < 10 && q < end; i++) {
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *p = q;
            *value = v;
            return 0;
        }
    }
    return -1;
}

/* A length-delimited field's body at *p: its start and size, *p moved past it; -1 if its
 * length is unreadable, runs past end, or is one the runtime refuses: upb reads a length
 * of at most 5 bytes and below 2**31 (the Python Scanner keeps the same rule). */
static int read_span(const uint8_t **p, const uint8_t *end, const uint8_t **body, Py_ssize_t *size)
{
    const uint8_t *start = *p;
    uint64_t n;
    if (read_varint(p, end, &n) < 0 || *p - start > 5 || n > INT32_MAX ||
        n > (uint64_t)(end - *p))
        return -1;
    *body = *p;
    *size = (Py_ssize_t)n;
    *p += n;
    return 0;
}

/* The data entries of one PacketBatch body: counted into *count, and when list is not
 * NULL also stored there from index *count on. 1: not the common shape (another field,
 * truncation), 0: read, -1: a Python error. */
static int read_batch(const uint8_t *p, const uint8_t *end, PyObject *list, Py_ssize_t *count)
{
    while (p < end) {
        const uint8_t *body;
        Py_ssize_t size;
        if (*p++ != TAG_DATA || read_span(&p, end, &body, &size) < 0)
            return 1;
        if (list != NULL) {
            PyObject *item = PyBytes_FromStringAndSize((const char *)body, size);
            if (item == NULL)
                return -1;
            PyList_SET_ITEM(list, *count, item);
        }
        (*count)++;
    }
    return 0;
}

/* decode_batch(raw: bytes) -> (dev, direction, data) | None */
static PyObject *decode_batch(PyObject *self, PyObject *raw)
{
    (void)self;
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "decode_batch: raw must be bytes");
        return NULL;
    }
    const uint8_t *start = (const uint8_t *)PyBytes_AS_STRING(raw);
    const uint8_t *end = start + PyBytes_GET_SIZE(raw);
    const uint8_t *p = start;
    PyObject *dev = NULL, *data = NULL;
    int32_t direction = 0;
    int batches = 0;
    Py_ssize_t count = 0;
    /* First pass: the shape, every dev checked (the runtime refuses bad UTF-8 in any
     * occurrence, the last one wins), the entries counted. */
    while (p < end) {
        uint8_t tag = *p++;
        const uint8_t *body;
        Py_ssize_t size;
        uint64_t value;
        if (tag == TAG_DIRECTION) {
            if (read_varint(&p, end, &value) < 0)
                goto unhandled;
            direction = (int32_t)(uint32_t)value; /* an int32 enum: the low 32 bits */
        } else if (tag == TAG_DEV) {
            if (read_span(&p, end, &body, &size) < 0)
                goto unhandled;
            PyObject *s = PyUnicode_DecodeUTF8((const char *)body, size, "strict");
            if (s == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    goto error;
                PyErr_Clear();
                goto unhandled;
            }
            Py_XSETREF(dev, s);
        } else if (tag == TAG_BATCH) {
            if (read_span(&p, end, &body, &size) < 0 || read_batch(body, body + size, NULL, &count) != 0)
                goto unhandled;
            batches++; /* a batch given twice is one, its entries in order */
        } else {
            goto unhandled;
        }
    }
    if (batches == 0) /* the packets form, or no packets at all */
        goto unhandled;
    /* Second pass, on the shape just checked: the entries. */
    data = PyList_New(count);
    if (data == NULL)
        goto error;
    count = 0;
    for (p = start; p < end;) {
        uint8_t tag = *p++;
        const uint8_t *body;
        Py_ssize_t size;
        uint64_t value;
        if (tag == TAG_DIRECTION) {
            (void)read_varint(&p, end, &value);
            continue;
        }
        (void)read_span(&p, end, &body, &size);
        if (tag == TAG_BATCH && read_batch(body, body + size, data, &count) < 0)
            goto error;
    }
    if (dev == NULL && (dev = PyUnicode_FromStringAndSize("", 0)) == NULL)
        goto error;
    PyObject *out = PyTuple_New(3), *number = PyLong_FromLong(direction);
    if (out == NULL || number == NULL) {
        Py_XDECREF(out);
        Py_XDECREF(number);
        goto error;
    }
    PyTuple_SET_ITEM(out, 0, dev);
    PyTuple_SET_ITEM(out, 1, number);
    PyTuple_SET_ITEM(out, 2, data);
    return out;
unhandled:
    Py_XDECREF(dev);
    Py_RETURN_NONE;
error:
    Py_XDECREF(dev);
    Py_XDECREF(data);
    return NULL;
}

static Py_ssize_t varint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v > 0x7F) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *put_varint(char *o, uint64_t v)
{
    while (v > 0x7F) {
        *o++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *o++ = (char)v;
    return o;
}

/* The copy of every piece into the answer. It reads only the bytes objects of items,
 * which it holds references to, and bytes objects never change: safe without the GIL. */
static void fill(char *o, const char *verdicts, Py_ssize_t nverdicts, PyObject **items, Py_ssize_t n,
                 const char *tail, Py_ssize_t ntail)
{
    if (nverdicts > 0) {
        *o++ = TAG_DATA;
        o = put_varint(o, (uint64_t)nverdicts);
        memcpy(o, verdicts, (size_t)nverdicts);
        o += nverdicts;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = PyBytes_GET_SIZE(items[i]);
        *o++ = TAG_RESULT;
        o = put_varint(o, (uint64_t)size);
        memcpy(o, PyBytes_AS_STRING(items[i]), (size_t)size);
        o += size;
    }
    memcpy(o, tail, (size_t)ntail);
}

/* Adds to *inner the size of the data entries of items (all bytes, else TypeError). */
static int measure(PyObject **items, Py_ssize_t n, Py_ssize_t *inner)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "encode_batch_result: data[%zd] is %.100s, not bytes", i,
                         Py_TYPE(items[i])->tp_name);
            return -1;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(items[i]);
        /* keeps *inner below PY_SSIZE_T_MAX / 2: the sums here and after cannot overflow */
        if (*inner > PY_SSIZE_T_MAX / 2 - 11 - size) {
            PyErr_NoMemory();
            return -1;
        }
        *inner += 1 + varint_size((uint64_t)size) + size;
    }
    return 0;
}

/* encode_batch_result(verdicts: bytes, data: list[bytes], tail: bytes) -> bytes */
static PyObject *encode_batch_result(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_batch_result(verdicts, data, tail)");
        return NULL;
    }
    PyObject *verdicts = args[0], *tail = args[2];
    if (!PyBytes_Check(verdicts) || !PyBytes_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "encode_batch_result: verdicts and tail must be bytes");
        return NULL;
    }
    /* The list (or tuple) itself, no copy: nothing changes it while the GIL is held. */
    PyObject *items = PySequence_Fast(args[1], "encode_batch_result: data must be a sequence");
    if (items == NULL)
        return NULL;
    Py_ssize_t nverdicts = PyBytes_GET_SIZE(verdicts), ntail = PyBytes_GET_SIZE(tail);
    Py_ssize_t head = ntail + (nverdicts > 0 ? 1 + varint_size((uint64_t)nverdicts) + nverdicts : 0);
    Py_ssize_t inner = head;
    if (measure(PySequence_Fast_ITEMS(items), PySequence_Fast_GET_SIZE(items), &inner) < 0)
        goto error;
    int nogil = inner >= NOGIL_BYTES;
    if (nogil && PyList_Check(items)) {
        /* Copied without the GIL: from a tuple of our own, which holds its items however
         * the caller's list changes meanwhile. Measured again: making the tuple may run
         * a finalizer, and another thread with it, which may have changed the list. */
        Py_SETREF(items, PyList_AsTuple(items));
        if (items == NULL)
            return NULL;
        inner = head;
        if (measure(PySequence_Fast_ITEMS(items), PySequence_Fast_GET_SIZE(items), &inner) < 0)
            goto error;
    }
    /* (a bytes object is not tracked by the garbage collector: making it runs nothing) */
    PyObject *out = PyBytes_FromStringAndSize(NULL, 1 + varint_size((uint64_t)inner) + inner);
    if (out == NULL)
        goto error;
    char *o = PyBytes_AS_STRING(out);
    *o++ = TAG_RESULT;
    o = put_varint(o, (uint64_t)inner);
    const char *v = PyBytes_AS_STRING(verdicts), *t = PyBytes_AS_STRING(tail);
    PyObject **array = PySequence_Fast_ITEMS(items);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (nogil) {
        Py_BEGIN_ALLOW_THREADS
        fill(o, v, nverdicts, array, n, t, ntail);
        Py_END_ALLOW_THREADS
    } else {
        fill(o, v, nverdicts, array, n, t, ntail);
    }
    Py_DECREF(items);
    return out;
error:
    Py_DECREF(items);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode_batch", decode_batch, METH_O,
     "decode_batch(raw) -> (dev, direction, data) | None: a PacketStreamRequest of the "
     "common batch shape, or None for the protobuf runtime to read"},
    {"encode_batch_result", (PyCFunction)(void (*)(void))encode_batch_result, METH_FASTCALL,
     "encode_batch_result(verdicts, data, tail) -> bytes: the PacketStreamResponse of a "
     "PacketBatchResult"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_packetwire", "PacketStream's packed batch form in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__packetwire(void)
{
    return PyModule_Create(&module);
}
