/* _tunoffload: the per-byte work of TUN offloads (tunoffload.py), in C.
 *
 * tunoffload.py holds the rules and the reference implementation; this file does the
 * work that costs per packet and per byte in Python: reading a TUN frame (from_host:
 * completing a checksum, or cutting a TCP super-packet into segments, each with its own
 * headers and full TCP checksum: segment) and coalescing segments for the host
 * (coalesce). Same results to the byte as the Python code (the tests run both).
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
#define VNET_LEN 10 /* sizeof(struct virtio_net_hdr) */

static PyObject *BadOffload; /* tunoffload.BadOffload, handed in by set_error */

static uint64_t sum16(const uint8_t *p, size_t n)
{
    /* The ones' complement sum of big-endian 16-bit words (an odd tail byte the high
     * half of a last word), folded to at most 0xFFFF (0 only for all-zero data). RFC
     * 1071's shortcuts: 64-bit words are added in host order, their carries counted
     * (2^16 == 1 mod 0xFFFF, so 2^32 and 2^64 are too: the fold of it all is the sum of
     * host-order 16-bit words), and the sum of byte-swapped words is the byte-swapped
     * sum; the tail goes word by word. */
    uint64_t s = 0, carries = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        s += w;
        carries += s < w;
    }
    s = (s & 0xFFFFFFFF) + (s >> 32) + carries;
    for (; i + 4 <= n; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        s += w;
    }
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    s = ((s & 0xFF) << 8) | (s >> 8);
#endif
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

/* from_host(frame) -> list[bytes]: one TUN read's packets (tunoffload.from_host). */
static PyObject *from_host(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "from_host takes bytes");
        return NULL;
    }
    const uint8_t *f = (const uint8_t *)PyBytes_AS_STRING(arg);
    size_t n = (size_t)PyBytes_GET_SIZE(arg);
    if (n < VNET_LEN)
        return refuse("shorter than its virtio_net_hdr");
    /* little-endian struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size,
     * csum_start, csum_offset */
    uint8_t flags = f[0], gso_type = f[1];
    size_t gso_size = (size_t)(f[4] | (f[5] << 8));
    size_t start = (size_t)(f[6] | (f[7] << 8)), offset = (size_t)(f[8] | (f[9] << 8));
    const uint8_t *p = f + VNET_LEN;
    n -= VNET_LEN;
    if ((gso_type & ~0x80) != 0) /* GSO_ECN aside, any GSO type: TCP segmentation */
        return cut(p, n, gso_size);
    PyObject *packet = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    if (packet == NULL)
        return NULL;
    if (flags & 1) { /* NEEDS_CSUM: the sum from start, its field holding the pseudo sum */
        if (start + offset + 2 > n || start < 20) {
            Py_DECREF(packet);
            return refuse("checksum offsets point outside the packet");
        }
        uint8_t *q = (uint8_t *)PyBytes_AS_STRING(packet);
        unsigned sum = ~fold(sum16(q + start, n - start)) & 0xFFFF;
        put16(q + start + offset, sum ? sum : 0xFFFF);
    }
    return Py_BuildValue("[N]", packet);
}

/* -- coalescing (to_host): tunoffload.py's rules, see its docstring ------------------- */

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define NOT_COALESCED (TCP_FIN | TCP_SYN | TCP_RST | TCP_URG | TCP_CWR)
#define MAX_COALESCED 65535

struct seg { /* one packet of the batch */
    const uint8_t *p;
    size_t n;
    int tcp;  /* a TCP packet without options, extension headers or fragmentation */
    int data; /* ... that carries data and only ACK / PSH / ECE among its flags */
    int v6;
    size_t ihl, hlen;
    int flow;      /* the flow it belongs to, or -1 (passed alone) */
    int next;      /* the next member of its flow, or -1 */
};

struct flow {
    int first, last; /* packet indices */
    size_t size, length, count;
    uint32_t next_seq;
    long next_id; /* IPv4: the id the next segment must have; -1 for IPv6 */
    int push, closed, open;
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* The TCP checksum verifies (pseudo-header, header and payload sum to 0xFFFF), and
 * IPv4's header checksum, as the kernel's GRO checks both before merging: a segment it
 * does not merge goes up alone, and the host checks it again and drops it. */
static int checksums_ok(const struct seg *s)
{
    if (!s->v6 && fold(sum16(s->p, 20)) != 0xFFFF)
        return 0;
    size_t l4 = s->n - s->ihl;
    uint64_t pseudo = (s->v6 ? sum16(s->p + 8, 32) : sum16(s->p + 12, 8)) + IPPROTO_TCP_NUM + l4;
    return fold(pseudo + sum16(s->p + s->ihl, l4)) == 0xFFFF;
}

static void parse(struct seg *s)
{
    const uint8_t *p = s->p;
    size_t n = s->n;
    s->tcp = s->data = 0;
    if (n < 40)
        return;
    if ((p[0] >> 4) == 4) {
        if (p[0] != 0x45 || p[9] != IPPROTO_TCP_NUM || (p[6] & 0x3F) || p[7] || get16(p + 2) != n)
            return;
        s->v6 = 0;
        s->ihl = 20;
    } else if ((p[0] >> 4) == 6) {
        if (n < 60 || p[6] != IPPROTO_TCP_NUM || (size_t)get16(p + 4) + 40 != n)
            return;
        s->v6 = 1;
        s->ihl = 40;
    } else {
        return;
    }
    s->hlen = s->ihl + (size_t)(p[s->ihl + 12] >> 4) * 4;
    if (s->hlen < s->ihl + 20 || s->hlen > n)
        return;
    s->tcp = 1;
    uint8_t flags = p[s->ihl + 13];
    s->data = s->hlen < n && !(flags & NOT_COALESCED) && (flags & TCP_ACK) && checksums_ok(s);
}

static int same_flow(const struct seg *a, const struct seg *b)
{
    if (a->v6 != b->v6 || memcmp(a->p + a->ihl, b->p + b->ihl, 4) != 0)
        return 0;
    return a->v6 ? memcmp(a->p + 8, b->p + 8, 32) == 0 : memcmp(a->p + 12, b->p + 12, 8) == 0;
}

static int same_fixed(const struct seg *a, const struct seg *b)
{
    const uint8_t *x = a->p, *y = b->p;
    size_t ihl = a->ihl;
    if (a->hlen != b->hlen)
        return 0;
    if (a->v6 ? memcmp(x, y, 4) != 0 || memcmp(x + 6, y + 6, 2) != 0
              : memcmp(x, y, 2) != 0 || memcmp(x + 6, y + 6, 4) != 0)
        return 0;
    return memcmp(x + ihl + 8, y + ihl + 8, 5) == 0 &&
           (x[ihl + 13] & ~TCP_PSH) == (y[ihl + 13] & ~TCP_PSH) &&
           memcmp(x + ihl + 14, y + ihl + 14, 2) == 0 &&
           memcmp(x + ihl + 18, y + ihl + 18, a->hlen - ihl - 18) == 0;
}

static int join(struct flow *f, struct seg *segs, int i)
{
    struct seg *s = &segs[i], *first = &segs[f->first];
    size_t size = s->n - s->hlen;
    if (f->closed || get32(s->p + s->ihl + 4) != f->next_seq || size > f->size ||
        f->length + size > MAX_COALESCED || !same_fixed(first, s) ||
        (f->next_id >= 0 && get16(s->p + 4) != f->next_id))
        return 0;
    segs[f->last].next = i;
    f->last = i;
    f->count++;
    f->length += size;
    f->next_seq += (uint32_t)size;
    if (f->next_id >= 0)
        f->next_id = (f->next_id + 1) & 0xFFFF;
    f->push = (s->p[s->ihl + 13] & TCP_PSH) != 0;
    f->closed = f->push || size < f->size;
    return 1;
}

static PyObject *plain_frame(const struct seg *s)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(VNET_LEN + s->n));
    if (out == NULL)
        return NULL;
    char *q = PyBytes_AS_STRING(out);
    memset(q, 0, VNET_LEN);
    memcpy(q + VNET_LEN, s->p, s->n);
    return Py_BuildValue("(Ni)", out, 1);
}

static PyObject *super_frame(const struct flow *f, const struct seg *segs)
{
    const struct seg *first = &segs[f->first];
    size_t ihl = first->ihl, hlen = first->hlen;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(VNET_LEN + f->length));
    if (out == NULL)
        return NULL;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(out), *q = v + VNET_LEN;
    /* struct virtio_net_hdr, little-endian: flags, gso_type, hdr_len, gso_size,
     * csum_start, csum_offset */
    v[0] = 1; /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
    v[1] = first->v6 ? 4 : 1; /* GSO_TCPV6 : GSO_TCPV4 */
    v[2] = (uint8_t)hlen, v[3] = (uint8_t)(hlen >> 8);
    v[4] = (uint8_t)f->size, v[5] = (uint8_t)(f->size >> 8);
    v[6] = (uint8_t)ihl, v[7] = (uint8_t)(ihl >> 8);
    v[8] = 16, v[9] = 0;
    memcpy(q, first->p, hlen);
    size_t at = hlen;
    for (int i = f->first; i >= 0; i = segs[i].next) {
        memcpy(q + at, segs[i].p + hlen, segs[i].n - hlen);
        at += segs[i].n - hlen;
    }
    if (first->v6) {
        put16(q + 4, (unsigned)(f->length - 40));
    } else {
        put16(q + 2, (unsigned)f->length);
        q[10] = q[11] = 0;
        put16(q + 10, ~fold(sum16(q, ihl)) & 0xFFFF);
    }
    if (f->push)
        q[ihl + 13] |= TCP_PSH;
    uint64_t pseudo = (first->v6 ? sum16(q + 8, 32) : sum16(q + 12, 8)) + IPPROTO_TCP_NUM +
                      (f->length - ihl);
    put16(q + ihl + 16, fold(pseudo)); /* CHECKSUM_PARTIAL: the pseudo-header sum */
    return Py_BuildValue("(Nn)", out, (Py_ssize_t)f->count);
}

static PyObject *coalesce(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyList_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "coalesce takes a list of bytes");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(arg);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(PyList_GET_ITEM(arg, i))) {
            PyErr_SetString(PyExc_TypeError, "coalesce takes a list of bytes");
            return NULL;
        }
    }
    struct seg *segs = calloc((size_t)n + 1, sizeof(*segs));
    struct flow *flows = calloc((size_t)n + 1, sizeof(*flows));
    int *order = calloc((size_t)n + 1, sizeof(*order)); /* >= 0: a packet; < 0: flow -1-k */
    PyObject *result = NULL;
    if (segs == NULL || flows == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_INCREF(arg);
    int nflows = 0, nentries = 0;
    for (int i = 0; i < (int)n; i++) {
        PyObject *b = PyList_GET_ITEM(arg, i);
        struct seg *s = &segs[i];
        s->p = (const uint8_t *)PyBytes_AS_STRING(b);
        s->n = (size_t)PyBytes_GET_SIZE(b);
        s->flow = s->next = -1;
        parse(s);
        if (!s->tcp) {
            order[nentries++] = i;
            continue;
        }
        int open = -1;
        for (int k = nflows - 1; k >= 0; k--) {
            if (flows[k].open && same_flow(&segs[flows[k].first], s)) {
                open = k;
                flows[k].open = 0; /* popped: reopened below if the packet joins it */
                break;
            }
        }
        if (!s->data) {
            order[nentries++] = i;
            continue;
        }
        if (open >= 0 && join(&flows[open], segs, i)) {
            flows[open].open = 1;
            continue;
        }
        struct flow *f = &flows[nflows];
        f->first = f->last = i;
        f->size = s->n - s->hlen;
        f->length = s->n;
        f->count = 1;
        f->next_seq = get32(s->p + s->ihl + 4) + (uint32_t)f->size;
        f->next_id = s->v6 ? -1 : (long)((get16(s->p + 4) + 1) & 0xFFFF);
        f->push = 0;
        f->closed = (s->p[s->ihl + 13] & TCP_PSH) != 0;
        f->open = 1;
        order[nentries++] = -1 - nflows;
        nflows++;
    }
    result = PyList_New(nentries);
    if (result != NULL) {
        for (int e = 0; e < nentries; e++) {
            PyObject *item;
            if (order[e] >= 0)
                item = plain_frame(&segs[order[e]]);
            else if (flows[-1 - order[e]].count == 1)
                item = plain_frame(&segs[flows[-1 - order[e]].first]);
            else
                item = super_frame(&flows[-1 - order[e]], segs);
            if (item == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, e, item);
        }
    }
    Py_DECREF(arg);
done:
    free(segs);
    free(flows);
    free(order);
    return result;
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
    {"from_host", from_host, METH_O,
     "from_host(frame) -> list[bytes]: tunoffload.from_host's packets."},
    {"coalesce", coalesce, METH_O,
     "coalesce(packets) -> list[(frame, count)]: tunoffload.to_host's frames."},
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
