/* _tunoffload: the per-byte work of TUN offloads (tunoffload.py), in C.
 *
 * tunoffload.py holds the rules and the reference implementation; this file does the two
 * things that cost per byte in Python: cutting a TCP super-packet into segments, each
 * with its own headers and full TCP checksum (segment), and the ones' complement sum of
 * a buffer (ones_sum). Same results to the byte as the Python code (the tests run both).
 * Built by hatch_build.py with -Wall -Wextra -Werror on the system headers only; without
 * it tunoffload.py runs its Python reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80
#define IPPROTO_TCP_NUM 6

static PyObject *BadOffload; /* tunoffload.BadOffload, handed in by set_error */

static uint64_t sum16(const uint8_t *p, size_t n)
{
    /* big-endian 16-bit words; an odd tail byte is the high half of a last word */
    uint64_t s = 0;
    size_t i = 0;
    for (; i + 1 < n; i += 2)
        s += (uint64_t)((p[i] << 8) | p[i + 1]);
    if (i < n)
        s += (uint64_t)p[i] << 8;
    return s;
}

static unsigned fold(uint64_t s)
{
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (unsigned)s;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static PyObject *refuse(const char *why)
{
    PyErr_SetString(BadOffload != NULL ? BadOffload : PyExc_ValueError, why);
    return NULL;
}

static PyObject *cut(const uint8_t *p, size_t n, size_t gso)
{
    int v6;
    size_t ihl;
    if (n >= 20 && (p[0] >> 4) == 4 && p[9] == IPPROTO_TCP_NUM && (p[0] & 0x0F) >= 5) {
        v6 = 0;
        ihl = (size_t)(p[0] & 0x0F) * 4;
    } else if (n >= 40 && (p[0] >> 4) == 6 && p[6] == IPPROTO_TCP_NUM) {
        v6 = 1;
        ihl = 40;
    } else {
        return refuse("GSO packet is not TCP over IPv4/IPv6 without extension headers");
    }
    if (n < ihl + 20)
        return refuse("GSO packet shorter than its TCP header");
    size_t thl = (size_t)(p[ihl + 12] >> 4) * 4;
    size_t hlen = ihl + thl;
    if (thl < 20 || hlen > n || gso == 0)
        return refuse("GSO packet with a bad TCP header length or gso_size 0");

    size_t total = n - hlen;
    size_t count = total ? (total + gso - 1) / gso : 1;
    uint32_t seq = ((uint32_t)p[ihl + 4] << 24) | ((uint32_t)p[ihl + 5] << 16) |
                   ((uint32_t)p[ihl + 6] << 8) | p[ihl + 7];
    unsigned ip_id = ((unsigned)p[4] << 8) | p[5];
    uint8_t flags = p[ihl + 13];
    uint64_t pseudo = (v6 ? sum16(p + 8, 32) : sum16(p + 12, 8)) + IPPROTO_TCP_NUM;

    PyObject *segments = PyList_New((Py_ssize_t)count);
    if (segments == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        size_t start = i * gso;
        size_t len = total - start < gso ? total - start : gso;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(hlen + len));
        if (out == NULL) {
            Py_DECREF(segments);
            return NULL;
        }
        uint8_t *q = (uint8_t *)PyBytes_AS_STRING(out);
        memcpy(q, p, hlen);
        memcpy(q + hlen, p + hlen + start, len);
        uint8_t f = start + gso >= total ? flags : (uint8_t)(flags & ~(TCP_FIN | TCP_PSH));
        q[ihl + 13] = i == 0 ? f : (uint8_t)(f & ~TCP_CWR);
        put32(q + ihl + 4, seq + (uint32_t)start);
        if (v6) {
            put16(q + 4, (unsigned)(thl + len));
        } else {
            put16(q + 2, (unsigned)(hlen + len));
            put16(q + 4, (ip_id + (unsigned)i) & 0xFFFF);
            q[10] = q[11] = 0;
            put16(q + 10, ~fold(sum16(q, ihl)) & 0xFFFF);
        }
        q[ihl + 16] = q[ihl + 17] = 0;
        uint64_t s = pseudo + thl + len + sum16(q + ihl, thl + len);
        put16(q + ihl + 16, ~fold(s) & 0xFFFF);
        PyList_SET_ITEM(segments, (Py_ssize_t)i, out);
    }
    return segments;
}

static PyObject *segment(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer packet;
    Py_ssize_t gso;
    if (!PyArg_ParseTuple(args, "y*n", &packet, &gso))
        return NULL;
    PyObject *result = gso < 0 ? refuse("gso_size must not be negative")
                               : cut(packet.buf, (size_t)packet.len, (size_t)gso);
    PyBuffer_Release(&packet);
    return result;
}

static PyObject *ones_sum(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) != 0)
        return NULL;
    unsigned s = fold(sum16(data.buf, (size_t)data.len));
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(s);
}

static PyObject *set_error(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_INCREF(arg);
    Py_XSETREF(BadOffload, arg);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"segment", segment, METH_VARARGS,
     "segment(packet, gso_size) -> list[bytes]: a TCP super-packet cut as TSO cuts it."},
    {"ones_sum", ones_sum, METH_O,
     "ones_sum(buffer) -> int: the folded 16-bit ones' complement sum (0 only if all zero)."},
    {"set_error", set_error, METH_O, "set_error(exc_type): what segment raises on bad input."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tunoffload", "TSO segmentation and checksums in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tunoffload(void)
{
    return PyModule_Create(&module);
}
