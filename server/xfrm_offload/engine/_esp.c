/*
 * The native ESP batch path: one call per batch per SA, for encap and for decap.
 *
 * This is the same protocol as the Python reference (esp.py, replay.py): every step
 * here has its readable counterpart there, and the differential tests hold both to
 * the same bytes, verdicts and state. Policy stays in Python (sa.py): time limits,
 * events, counters by reason. This file frames, seals/opens with OpenSSL 3 EVP
 * (contexts kept per SA, the key set once), checks and moves the sequence counter
 * and the replay window it is handed, counts the lifetime's bytes and packets against
 * the limits it is handed (lifetime.BatchCount), and reports per packet a compact
 * verdict.
 *
 * Rules of the file: no buffer the caller owns is ever written (decryption and output
 * go to fresh bytes objects, decrypted where the result will be); no error message carries key
 * material; every length is checked before it is read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdint.h>
#include <string.h>

#define MODULE_NAME "xfrm_offload.engine._esp"

/* Result codes: index into the SA's result table (code 0 is "the bytes"). */
enum {
    R_BYTES = 0,
    R_DUMMY,        /* None: next header 59 */
    R_KEEPALIVE,    /* NonEsp.KEEPALIVE */
    R_IKE,          /* NonEsp.IKE */
    R_IN_HDR,       /* XfrmInHdrError */
    R_IN_NO_STATES, /* XfrmInNoStates */
    R_IN_PROTO,     /* XfrmInStateProtoError */
    R_IN_MODE,      /* XfrmInStateModeError */
    R_IN_SEQ,       /* XfrmInStateSeqError */
    R_IN_MISMATCH,  /* XfrmInStateMismatch */
    R_OUT_ERROR,    /* XfrmOutError */
    R_OUT_MODE,     /* XfrmOutStateModeError */
    R_OUT_SEQ,      /* XfrmOutStateSeqError */
    R_IN_EXPIRED,   /* XfrmInStateExpired */
    R_OUT_EXPIRED,  /* XfrmOutStateExpired */
    R_COUNT
};
/* Verdict flag: the packet passed the ICV (counted in the lifetime, window advanced). */
#define V_PASSED 0x80

enum { K_AEAD = 0, K_GMAC = 1, K_CBC = 2, K_NULL = 3 };

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_IPIP_ 4
#define IPPROTO_UDP_ 17
#define IPPROTO_IPV6_ 41
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_ESP_ 50
#define IPPROTO_NONE_ 59
#define IPPROTO_DSTOPTS_ 60
#define TTL 64
#define MAX_ICV 64
#define MAX_IV 16

static PyObject *NativeError;

typedef struct {
    PyObject_HEAD
    int kind;
    int chacha;
    EVP_CIPHER_CTX *enc;  /* AEAD / CBC encrypt, key set */
    EVP_CIPHER_CTX *dec;  /* AEAD / CBC decrypt, key set */
    EVP_CIPHER_CTX *ivgen; /* CBC: AES-ECB(iv key) */
    EVP_MAC_CTX *mac;      /* HMAC, key set; NULL for digest_null */
    unsigned char nsalt[4];
    uint64_t ivs;
    uint8_t spi[4];
    int esn;
    int iv_len;
    int icv_len;
    int block;
    int pad_mask;
    int min_len;
    int tunnel;
    int outer_v6;
    int natt;
    int sport, dport;
    int tfc_padto; /* tunnel mode: pad shorter inner packets to this (0: none) */
    uint8_t saddr[16], daddr[16];
    int addr_len;
    int nopmtudisc;
    int decap_ecn, decap_dscp;
    uint8_t tos_map[256];
    int outer_proto;
    uint32_t ident;
    /* replay window */
    int wsize;
    int wwords;
    uint64_t *win; /* bit k: top - k received (after the run is flushed) */
    uint64_t run;  /* top-run+1 .. top all received, not yet shifted into win */
    PyObject *results; /* tuple of R_COUNT objects */
} SAObject;

/* -- small helpers ------------------------------------------------------------------ */

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* One's complement sum of 16-bit big-endian words (odd length: a zero byte after). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)((p[i] << 8) | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return sum;
}
static inline uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)(~sum & 0xFFFF);
}

static int fail_openssl(void)
{
    ERR_clear_error();
    PyErr_SetString(NativeError, "OpenSSL call failed");
    return -1;
}

/* -- crypto: seal and open the ESP part ---------------------------------------------- */

static int hmac_icv(SAObject *self, const uint8_t *body, size_t n, const uint8_t *hi4,
                    uint8_t *icv)
{
    uint8_t full[EVP_MAX_MD_SIZE];
    size_t outl = 0;
    if (!EVP_MAC_init(self->mac, NULL, 0, NULL))
        return fail_openssl();
    if (!EVP_MAC_update(self->mac, body, n))
        return fail_openssl();
    if (hi4 != NULL && !EVP_MAC_update(self->mac, hi4, 4))
        return fail_openssl();
    if (!EVP_MAC_final(self->mac, full, &outl, sizeof(full)))
        return fail_openssl();
    memcpy(icv, full, (size_t)self->icv_len);
    return 0;
}

/*
 * Seal in place: ``esp`` holds SPI, seq, IV slot, then ``plen`` bytes of plaintext with
 * its trailer; the ICV goes after them. ``seq`` is the full 64-bit number (IV, ESN AAD).
 */
static int seal(SAObject *self, uint8_t *esp, size_t plen, uint64_t seq)
{
    int outl = 0, fin = 0;
    uint8_t aad[8];
    uint8_t nonce[12];
    uint8_t *iv = esp + 8;
    uint8_t *plain = esp + 8 + self->iv_len;
    uint8_t spare[32]; /* what Final may write: nothing with these ciphers */
    memcpy(esp, self->spi, 4);
    put32(esp + 4, (uint32_t)seq);
    if (self->kind == K_AEAD || self->kind == K_GMAC) {
        uint8_t tag[16];
        put64(iv, seq ^ self->ivs);
        memcpy(nonce, self->nsalt, 4);
        memcpy(nonce + 4, iv, 8);
        if (self->esn) {
            memcpy(aad, self->spi, 4);
            put32(aad + 4, (uint32_t)(seq >> 32));
        }
        if (!EVP_EncryptInit_ex(self->enc, NULL, NULL, NULL, nonce))
            return fail_openssl();
        if (self->esn) {
            /* SPI || seq_hi || seq_lo */
            uint8_t a12[12];
            memcpy(a12, aad, 8);
            memcpy(a12 + 8, esp + 4, 4);
            if (!EVP_EncryptUpdate(self->enc, NULL, &outl, a12, 12))
                return fail_openssl();
        } else if (!EVP_EncryptUpdate(self->enc, NULL, &outl, esp, 8)) {
            return fail_openssl();
        }
        if (self->kind == K_GMAC) {
            /* RFC 4543: the IV and the payload are authenticated, not encrypted. */
            if (!EVP_EncryptUpdate(self->enc, NULL, &outl, iv, 8 + (int)plen))
                return fail_openssl();
        } else if (plen > 0 && !EVP_EncryptUpdate(self->enc, plain, &outl, plain, (int)plen)) {
            return fail_openssl();
        }
        if (!EVP_EncryptFinal_ex(self->enc, spare, &fin))
            return fail_openssl();
        if (!EVP_CIPHER_CTX_ctrl(self->enc, EVP_CTRL_AEAD_GET_TAG, 16, tag))
            return fail_openssl();
        memcpy(plain + plen, tag, (size_t)self->icv_len);
        return 0;
    }
    if (self->kind == K_CBC) {
        uint8_t ctr[16] = {0};
        put64(ctr + 8, seq);
        if (!EVP_EncryptUpdate(self->ivgen, iv, &outl, ctr, 16) || outl != 16)
            return fail_openssl();
        if (!EVP_EncryptInit_ex(self->enc, NULL, NULL, NULL, iv))
            return fail_openssl();
        EVP_CIPHER_CTX_set_padding(self->enc, 0);
        if (!EVP_EncryptUpdate(self->enc, plain, &outl, plain, (int)plen))
            return fail_openssl();
        if (!EVP_EncryptFinal_ex(self->enc, spare, &fin) || fin != 0)
            return fail_openssl();
    }
    if (self->icv_len) {
        uint8_t hi4[4];
        put32(hi4, (uint32_t)(seq >> 32));
        return hmac_icv(self, esp, 8 + (size_t)self->iv_len + plen, self->esn ? hi4 : NULL,
                        plain + plen);
    }
    return 0;
}

/*
 * Open the ESP part buf[0:n]. The plaintext (with trailer) goes into a new bytes object
 * (*resp) after ``head`` bytes left for the caller: decrypted where the result will be,
 * never in the caller's buffer. Returns the plaintext length, or -R_IN_HDR / -R_IN_PROTO
 * for a drop (*resp NULL), or OPEN_ERROR with an exception set.
 */
#define OPEN_ERROR (-1000)
static Py_ssize_t open_esp(SAObject *self, const uint8_t *buf, size_t n, uint32_t seq_hi,
                           size_t head, PyObject **resp)
{
    int outl = 0, fin = 0;
    uint8_t spare[32]; /* what Final may write: nothing with these ciphers */
    size_t icv = (size_t)self->icv_len;
    size_t ivl = (size_t)self->iv_len;
    *resp = NULL;
    if (n < (size_t)self->min_len)
        return -R_IN_HDR;
    size_t plen = n - 8 - ivl - icv;
    if (self->kind == K_CBC || self->kind == K_NULL) {
        if (plen % (size_t)self->block)
            return -R_IN_HDR;
    }
    if ((self->kind == K_CBC || self->kind == K_NULL) && icv) {
        /* CBC / NULL + HMAC: verify before anything is allocated or decrypted */
        uint8_t mine[MAX_ICV];
        uint8_t hi4[4];
        put32(hi4, seq_hi);
        if (hmac_icv(self, buf, n - icv, self->esn ? hi4 : NULL, mine) < 0)
            return OPEN_ERROR;
        if (CRYPTO_memcmp(mine, buf + n - icv, icv) != 0)
            return -R_IN_PROTO;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(head + plen));
    if (res == NULL)
        return OPEN_ERROR;
    *resp = res;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(res) + head;
    if (self->kind == K_AEAD || self->kind == K_GMAC) {
        uint8_t nonce[12];
        uint8_t a12[12];
        memcpy(nonce, self->nsalt, 4);
        memcpy(nonce + 4, buf + 8, 8);
        if (!EVP_DecryptInit_ex(self->dec, NULL, NULL, NULL, nonce) ||
            !EVP_CIPHER_CTX_ctrl(self->dec, EVP_CTRL_AEAD_SET_TAG, (int)icv,
                                 (void *)(buf + n - icv)))
            goto openssl_error;
        if (self->esn) {
            memcpy(a12, buf, 4);
            put32(a12 + 4, seq_hi);
            memcpy(a12 + 8, buf + 4, 4);
            if (!EVP_DecryptUpdate(self->dec, NULL, &outl, a12, 12))
                goto openssl_error;
        } else if (!EVP_DecryptUpdate(self->dec, NULL, &outl, buf, 8)) {
            goto openssl_error;
        }
        if (self->kind == K_GMAC) {
            if (!EVP_DecryptUpdate(self->dec, NULL, &outl, buf + 8, (int)(8 + plen)))
                goto openssl_error;
            memcpy(out, buf + 16, plen);
        } else if (plen > 0 &&
                   !EVP_DecryptUpdate(self->dec, out, &outl, buf + 16, (int)plen)) {
            goto openssl_error;
        }
        if (EVP_DecryptFinal_ex(self->dec, spare, &fin) <= 0) {
            ERR_clear_error();
            Py_CLEAR(*resp);
            return -R_IN_PROTO;
        }
        return (Py_ssize_t)plen;
    }
    if (self->kind == K_NULL) {
        memcpy(out, buf + 8, plen);
        return (Py_ssize_t)plen;
    }
    if (!EVP_DecryptInit_ex(self->dec, NULL, NULL, NULL, buf + 8))
        goto openssl_error;
    EVP_CIPHER_CTX_set_padding(self->dec, 0);
    if (!EVP_DecryptUpdate(self->dec, out, &outl, buf + 8 + ivl, (int)plen) ||
        !EVP_DecryptFinal_ex(self->dec, spare, &fin) || fin != 0)
        goto openssl_error;
    return (Py_ssize_t)plen;
openssl_error:
    Py_CLEAR(*resp);
    fail_openssl();
    return OPEN_ERROR;
}

/* -- lifetime: lifetime.BatchCount, the same rules --------------------------------- */

#define XFRM_INF UINT64_MAX
enum { L_BYTES = 1, L_PACKETS = 2 }; /* the kind of limit that fired */

typedef struct {
    uint64_t bytes, packets;
    uint64_t soft_bytes, soft_packets, hard_bytes, hard_packets; /* XFRM_INF: none */
    Py_ssize_t soft_at, hard_at; /* batch index where the limit fired, -1: not */
    int soft_kind, hard_kind;
} Life;

static inline int reached(uint64_t count, uint64_t limit)
{
    return limit != XFRM_INF && count >= limit;
}

/* BatchCount.count: packet ``i`` passed with ``n`` bytes of cleartext. */
static void life_count(Life *l, Py_ssize_t i, uint64_t n)
{
    l->bytes += n;
    l->packets++;
    if (reached(l->bytes, l->hard_bytes)) {
        l->hard_at = i;
        l->hard_kind = L_BYTES;
    } else if (reached(l->packets, l->hard_packets)) {
        l->hard_at = i;
        l->hard_kind = L_PACKETS;
    } else if (l->soft_at < 0) {
        if (reached(l->bytes, l->soft_bytes)) {
            l->soft_at = i;
            l->soft_kind = L_BYTES;
        } else if (reached(l->packets, l->soft_packets)) {
            l->soft_at = i;
            l->soft_kind = L_PACKETS;
        }
    }
}

/* -- outbound ---------------------------------------------------------------------- */

typedef struct {
    uint64_t oseq;
    uint64_t epoch;
    uint64_t limit;
    int wraps;
    int overflowed;
} OutSeq;

/* OutboundSequence.next: 0 and *seq set, or -1 when exhausted. */
static int next_seq(OutSeq *s, uint64_t *seq)
{
    uint64_t n;
    if (s->oseq >= s->limit) {
        if (!s->wraps) {
            s->overflowed = 1;
            return -1;
        }
        n = 0;
        s->epoch++;
    } else {
        n = s->oseq + 1;
    }
    s->oseq = n;
    *seq = (s->epoch << 32) | n;
    return 0;
}

static void ipv4_header(SAObject *self, uint8_t *h, uint32_t total, int tos, int df,
                        uint32_t ident)
{
    h[0] = 0x45;
    h[1] = (uint8_t)tos;
    put16(h + 2, total);
    put16(h + 4, ident);
    put16(h + 6, df ? 0x4000 : 0);
    h[8] = TTL;
    h[9] = (uint8_t)self->outer_proto;
    h[10] = h[11] = 0;
    memcpy(h + 12, self->saddr, 4);
    memcpy(h + 16, self->daddr, 4);
    put16(h + 10, csum_fold(csum_add(0, h, 20)));
}

static void ipv6_header(SAObject *self, uint8_t *h, uint32_t plen, int tclass)
{
    put32(h, 0x60000000u | ((uint32_t)tclass << 20));
    put16(h + 4, plen);
    h[6] = (uint8_t)self->outer_proto;
    h[7] = TTL;
    memcpy(h + 8, self->saddr, 16);
    memcpy(h + 24, self->daddr, 16);
}

static void udp_header(SAObject *self, uint8_t *u, uint32_t len)
{
    put16(u, (uint32_t)self->sport);
    put16(u + 2, (uint32_t)self->dport);
    put16(u + 4, len);
    u[6] = u[7] = 0;
}

/* The IPv6 UDP checksum over the pseudo-header (0 goes out as 0xFFFF). */
static void udp6_checksum(uint8_t *u, size_t ulen, const uint8_t *src, const uint8_t *dst)
{
    uint8_t pseudo[40];
    memcpy(pseudo, src, 16);
    memcpy(pseudo + 16, dst, 16);
    put32(pseudo + 32, (uint32_t)ulen);
    pseudo[36] = pseudo[37] = pseudo[38] = 0;
    pseudo[39] = IPPROTO_UDP_;
    uint32_t s = csum_add(0, pseudo, 40);
    s = csum_add(s, u, ulen);
    uint16_t c = csum_fold(s);
    put16(u + 6, c ? c : 0xFFFF);
}

/* Step over the IPv6 extension header ``*nh`` at ``*off``: its next-header field becomes
 * ``*field``, what it names ``*nh``, and ``*off`` moves past it; -1 if it runs past
 * ``total``. */
static int v6_skip(const uint8_t *p, size_t total, int *nh, size_t *off, size_t *field)
{
    if (*off + 2 > total)
        return -1;
    size_t len = *nh == IPPROTO_FRAGMENT_ ? 8 : ((size_t)p[*off + 1] + 1) * 8;
    if (*off + len > total)
        return -1;
    *field = *off;
    *nh = p[*off];
    *off += len;
    return 0;
}

/* Where transport ESP goes in an IPv6 packet (ipheader.ipv6_esp_insert_point). */
static int v6_insert_point(const uint8_t *p, size_t total, size_t *off_out, size_t *field_out)
{
    size_t field = 6, off = 40;
    int nh = p[6];
    for (;;) {
        if (nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_FRAGMENT_) {
            /* walk on */
        } else if (nh == IPPROTO_DSTOPTS_) {
            if (off + 2 > total)
                return -1;
            if (p[off] != IPPROTO_ROUTING_)
                break;
        } else {
            break;
        }
        if (v6_skip(p, total, &nh, &off, &field) < 0)
            return -1;
    }
    *off_out = off;
    *field_out = field;
    return 0;
}

/* The first header ``wanted`` after the IPv6 extension headers (ipv6_find_header). */
static int v6_find(const uint8_t *p, size_t total, int wanted, size_t *off_out,
                   size_t *field_out)
{
    size_t field = 6, off = 40;
    int nh = p[6];
    while (nh != wanted) {
        if (nh != IPPROTO_HOPOPTS_ && nh != IPPROTO_ROUTING_ && nh != IPPROTO_DSTOPTS_ &&
            nh != IPPROTO_FRAGMENT_)
            return -1;
        if (v6_skip(p, total, &nh, &off, &field) < 0)
            return -1;
    }
    *off_out = off;
    *field_out = field;
    return 0;
}

/* The UDP checksum of p[start:start+len]: 0 passes over IPv4 (none), fails over IPv6. */
static int udp_checksum_ok(const uint8_t *p, size_t start, size_t len, int v6)
{
    uint8_t pseudo[40];
    size_t plen;
    if (be16(p + start + 6) == 0)
        return !v6;
    if (v6) {
        memcpy(pseudo, p + 8, 32);
        put32(pseudo + 32, (uint32_t)len);
        pseudo[36] = pseudo[37] = pseudo[38] = 0;
        pseudo[39] = IPPROTO_UDP_;
        plen = 40;
    } else {
        memcpy(pseudo, p + 12, 8);
        pseudo[8] = 0;
        pseudo[9] = IPPROTO_UDP_;
        put16(pseudo + 10, (uint32_t)len);
        plen = 12;
    }
    return csum_add(csum_add(0, pseudo, plen), p + start, len) == 0xFFFF;
}

static void fill_trailer(SAObject *self, uint8_t *t, size_t padlen, int nh)
{
    size_t k;
    (void)self;
    for (k = 0; k < padlen; k++)
        t[k] = (uint8_t)(k + 1);
    t[padlen] = (uint8_t)padlen;
    t[padlen + 1] = (uint8_t)nh;
}

/*
 * Encapsulate one packet. Returns a new bytes object, or NULL with *code set (a drop),
 * or NULL with an exception set (*code = -1).
 */
static PyObject *encap_one(SAObject *self, const uint8_t *p, size_t n, OutSeq *sq, int *code)
{
    size_t ivl = (size_t)self->iv_len, icv = (size_t)self->icv_len;
    size_t hdr, payload_off, payload_len, fill = 0, field = 0;
    int nh, tos = 0, df = 0;
    uint64_t seq;
    *code = -1;
    if (self->tunnel) {
        if (n >= 20 && p[0] >> 4 == 4) {
            tos = p[1];
            df = (p[6] & 0x40) && !self->nopmtudisc;
            nh = IPPROTO_IPIP_;
        } else if (n >= 40 && p[0] >> 4 == 6) {
            tos = ((p[0] & 0x0F) << 4) | (p[1] >> 4);
            df = !self->nopmtudisc;
            nh = IPPROTO_IPV6_;
        } else {
            *code = R_OUT_MODE;
            return NULL;
        }
        hdr = self->outer_v6 ? 40 : 20;
        payload_off = 0;
        payload_len = n;
        if (n < (size_t)self->tfc_padto)
            fill = (size_t)self->tfc_padto - n;
    } else if (!self->outer_v6) {
        size_t ihl, total;
        if (n < 20 || p[0] >> 4 != 4) {
            *code = R_OUT_MODE;
            return NULL;
        }
        ihl = (size_t)(p[0] & 0x0F) * 4;
        total = be16(p + 2);
        if (ihl < 20 || total < ihl || total > n) {
            *code = R_OUT_MODE;
            return NULL;
        }
        hdr = ihl;
        payload_off = ihl;
        payload_len = total - ihl;
        nh = p[9];
    } else {
        size_t total, off;
        if (n < 40 || p[0] >> 4 != 6) {
            *code = R_OUT_MODE;
            return NULL;
        }
        total = 40 + (size_t)be16(p + 4);
        if (total > n || v6_insert_point(p, total, &off, &field) < 0) {
            *code = R_OUT_MODE;
            return NULL;
        }
        hdr = off;
        payload_off = off;
        payload_len = total - off;
        nh = p[field];
    }
    if (next_seq(sq, &seq) < 0) {
        *code = R_OUT_SEQ;
        return NULL;
    }
    size_t inner = payload_len + fill;
    size_t padlen = (size_t)(-(Py_ssize_t)(inner + 2)) & (size_t)self->pad_mask;
    size_t plen = inner + padlen + 2;
    size_t esp_len = 8 + ivl + plen + icv;
    size_t udp = self->natt ? 8 : 0;
    size_t out_len = hdr + udp + esp_len;
    /* outer length limits, as the reference checks them (after the number is used) */
    if (self->tunnel) {
        if (self->outer_v6 ? udp + esp_len > 0xFFFF : 20 + udp + esp_len > 0xFFFF) {
            *code = R_OUT_ERROR;
            return NULL;
        }
    } else if (!self->outer_v6) {
        if (out_len > 0xFFFF) {
            *code = R_OUT_ERROR;
            return NULL;
        }
    } else if (out_len - 40 > 0xFFFF) {
        *code = R_OUT_ERROR;
        return NULL;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)out_len);
    if (res == NULL)
        return NULL;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(res);
    uint8_t *esp = o + hdr + udp;
    uint8_t *plain = esp + 8 + ivl;
    memcpy(plain, p + payload_off, payload_len);
    if (fill)
        memset(plain + payload_len, 0, fill);
    fill_trailer(self, plain + inner, padlen, nh);
    if (seal(self, esp, plen, seq) < 0) {
        Py_DECREF(res);
        return NULL;
    }
    if (udp)
        udp_header(self, o + hdr, (uint32_t)(udp + esp_len));
    if (self->tunnel) {
        int otos = self->tos_map[tos];
        if (self->outer_v6) {
            ipv6_header(self, o, (uint32_t)(udp + esp_len), otos);
            if (udp)
                udp6_checksum(o + 40, udp + esp_len, self->saddr, self->daddr);
        } else {
            uint32_t ident = 0;
            if (!df)
                ident = self->ident = (self->ident + 1) & 0xFFFF;
            ipv4_header(self, o, (uint32_t)out_len, otos, df, ident);
        }
    } else if (!self->outer_v6) {
        memcpy(o, p, hdr);
        o[9] = (uint8_t)self->outer_proto;
        put16(o + 2, (uint32_t)out_len);
        o[10] = o[11] = 0;
        put16(o + 10, csum_fold(csum_add(0, o, hdr)));
    } else {
        memcpy(o, p, hdr);
        o[field] = (uint8_t)self->outer_proto;
        put16(o + 4, (uint32_t)(out_len - 40));
        if (udp)
            udp6_checksum(o + hdr, udp + esp_len, p + 8, p + 24);
    }
    *code = R_BYTES;
    return res;
}

/* -- replay window (replay.ReplayWindow, same semantics) ------------------------------ */

typedef struct {
    uint64_t top;
    uint64_t d_window; /* replay_window increments */
    uint64_t d_replay; /* replay increments */
} Replay;

static inline int win_bit(SAObject *self, uint64_t k)
{
    if (k < self->run)
        return 1;
    k -= self->run;
    if (k >= (uint64_t)self->wsize)
        return 0;
    return (int)((self->win[k >> 6] >> (k & 63)) & 1);
}

static inline void win_set(SAObject *self, uint64_t k)
{
    k -= self->run;
    self->win[k >> 6] |= (uint64_t)1 << (k & 63);
}

/* win = (win << n) & mask (n < wsize) */
static void win_shift(SAObject *self, uint64_t n)
{
    int W = self->wwords;
    if (n >= (uint64_t)self->wsize) {
        memset(self->win, 0, (size_t)W * 8);
        return;
    }
    int ws = (int)(n >> 6), bs = (int)(n & 63);
    int i;
    for (i = W - 1; i >= 0; i--) {
        uint64_t v = 0;
        int j = i - ws;
        if (j >= 0) {
            v = self->win[j] << bs;
            if (bs && j > 0)
                v |= self->win[j - 1] >> (64 - bs);
        }
        self->win[i] = v;
    }
    int extra = W * 64 - self->wsize;
    if (extra)
        self->win[W - 1] &= ~(uint64_t)0 >> extra;
}

static void win_flush(SAObject *self)
{
    uint64_t r = self->run, k;
    if (!r)
        return;
    self->run = 0;
    win_shift(self, r);
    if (r > (uint64_t)self->wsize)
        r = (uint64_t)self->wsize;
    for (k = 0; k < r; k++)
        self->win[k >> 6] |= (uint64_t)1 << (k & 63);
}

/* RFC 4303 A2: the high half for seq_lo (may be -1 or 2^32). */
static int64_t infer_hi(SAObject *self, uint64_t top, uint32_t seq_lo)
{
    int64_t hi = (int64_t)(top >> 32);
    uint32_t lo = (uint32_t)top;
    uint64_t size = (uint64_t)self->wsize;
    if ((uint64_t)lo + 1 >= size)
        return seq_lo < (uint64_t)lo - size + 1 ? hi + 1 : hi;
    return seq_lo >= (uint32_t)((uint64_t)lo - size + 1) ? hi - 1 : hi;
}

/* check64 for seq <= top (seq > 0): 0 pass, -1 drop (counter moved). */
static int check_old(SAObject *self, Replay *rp, uint64_t seq)
{
    uint64_t diff = rp->top - seq;
    if (diff >= (uint64_t)self->wsize) {
        rp->d_window++;
        return -1;
    }
    if (win_bit(self, diff)) {
        rp->d_replay++;
        return -1;
    }
    return 0;
}

/* ReplayWindow.check: 0 and *hi set, or -1 (drop as XfrmInStateSeqError). */
static int replay_check(SAObject *self, Replay *rp, uint32_t seq_lo, uint32_t *hi_out)
{
    if (!self->wsize) {
        *hi_out = (uint32_t)(rp->top >> 32);
        return 0;
    }
    if (!self->esn) {
        *hi_out = 0;
        if (seq_lo <= rp->top) {
            if (seq_lo == 0)
                return -1;
            return check_old(self, rp, seq_lo);
        }
        return 0;
    }
    int64_t hi = infer_hi(self, rp->top, seq_lo);
    if (hi > (int64_t)0xFFFFFFFF)
        return -1;
    if (hi < 0) {
        rp->d_window++;
        return -1;
    }
    uint64_t seq = ((uint64_t)hi << 32) | seq_lo;
    *hi_out = (uint32_t)hi;
    if (seq <= rp->top) {
        if (seq == 0)
            return -1;
        return check_old(self, rp, seq);
    }
    return 0;
}

/* ReplayWindow.advance after the ICV verified (the check just passed): 1 if seq_hi moved. */
static int replay_advance(SAObject *self, Replay *rp, uint32_t seq_lo, uint32_t seq_hi)
{
    if (!self->wsize)
        return 0;
    uint64_t seq = self->esn ? (((uint64_t)seq_hi << 32) | seq_lo) : seq_lo;
    uint64_t top = rp->top;
    if (seq > top) {
        uint64_t diff = seq - top;
        if (diff == 1) {
            if (self->run < (uint64_t)self->wsize)
                self->run++;
            else
                memset(self->win, 0, (size_t)self->wwords * 8);
        } else {
            win_flush(self);
            win_shift(self, diff);
            self->win[0] |= 1;
        }
        rp->top = seq;
        return (seq >> 32) != (top >> 32);
    }
    win_set(self, top - seq);
    return 0;
}

/* -- inbound ----------------------------------------------------------------------- */

static void apply_tos(uint8_t *o, size_t inner, int outer_tos, int ecn, int dscp);

/*
 * EspTransform.locate: the ESP part of p[0:n] as [*start_out, *end_out) and the offset of
 * the next-header field before it (9 for IPv4). Returns R_BYTES, or the drop's code
 * (R_IN_HDR, R_IN_MISMATCH), or R_KEEPALIVE / R_IKE for NAT-T control datagrams.
 */
static int locate_esp(SAObject *self, const uint8_t *p, size_t n, size_t *start_out,
                      size_t *end_out, size_t *field_out)
{
    size_t start, end, field;
    if (self->outer_v6) {
        if (n < 40 || p[0] >> 4 != 6)
            return R_IN_HDR;
        end = 40 + (size_t)be16(p + 4);
        if (end > n)
            return R_IN_HDR;
        if (v6_find(p, end, self->outer_proto, &start, &field) < 0) {
            size_t a, b;
            int other = self->natt ? IPPROTO_ESP_ : IPPROTO_UDP_;
            return v6_find(p, end, other, &a, &b) == 0 ? R_IN_MISMATCH : R_IN_HDR;
        }
    } else {
        if (n < 20 || p[0] >> 4 != 4)
            return R_IN_HDR;
        start = (size_t)(p[0] & 0x0F) * 4;
        end = be16(p + 2);
        if (start < 20 || end < start || end > n)
            return R_IN_HDR;
        /* a fragment (reassembled before xfrm in the kernel) or a bad header checksum */
        if ((p[6] & 0x3F) || p[7] || csum_add(0, p, start) != 0xFFFF)
            return R_IN_HDR;
        if (p[9] != self->outer_proto)
            return (p[9] == IPPROTO_ESP_ || p[9] == IPPROTO_UDP_) ? R_IN_MISMATCH : R_IN_HDR;
        field = 9;
    }
    if (self->natt) {
        if (end - start < 8)
            return R_IN_HDR;
        size_t ulen = be16(p + start + 4);
        if (ulen < 8 || start + ulen > end)
            return R_IN_HDR;
        if (!udp_checksum_ok(p, start, ulen, self->outer_v6))
            return R_IN_HDR; /* udp_rcv drops it before the encap socket sees it */
        end = start + ulen;
        start += 8;
        if (end - start == 1 && p[start] == 0xFF)
            return R_KEEPALIVE;
        if (end - start >= 4 && be32(p + start) == 0)
            return R_IKE;
    }
    if (end - start < 8)
        return R_IN_HDR;
    *start_out = start;
    *end_out = end;
    *field_out = field;
    return R_BYTES;
}

/*
 * Decapsulate one packet. *code: R_BYTES (returned object), a result code; *passed set
 * when the ICV verified. *moved: the window's seq_hi moved (value in *new_hi).
 * Returns NULL with an exception set and *code == -1 on an internal error.
 */
static PyObject *decap_one(SAObject *self, const uint8_t *p, size_t n, Replay *rp, int *code,
                           int *passed, int *moved, uint32_t *new_hi)
{
    size_t start, end, field;
    *passed = 0;
    *moved = 0;
    *code = locate_esp(self, p, n, &start, &end, &field);
    if (*code != R_BYTES)
        return NULL;
    *code = -1;
    if (memcmp(p + start, self->spi, 4) != 0) {
        *code = R_IN_NO_STATES;
        return NULL;
    }
    uint32_t seq_lo = be32(p + start + 4), seq_hi = 0;
    if (replay_check(self, rp, seq_lo, &seq_hi) < 0) {
        *code = R_IN_SEQ;
        return NULL;
    }
    /* transport: the original header (and the NAT-T UDP header's place) go before it */
    size_t head = self->tunnel ? 0 : (self->natt ? start - 8 : start);
    PyObject *res = NULL;
    Py_ssize_t got = open_esp(self, p + start, end - start, seq_hi, head, &res);
    if (got == OPEN_ERROR)
        return NULL;
    if (got < 0) {
        *code = (int)-got;
        return NULL;
    }
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(res);
    /* scripts/sanitize plants its out-of-bounds canary after this line */
    const uint8_t *plain = o + head;
    size_t pn = (size_t)got;
    int padlen = plain[pn - 2], nh = plain[pn - 1];
    Py_ssize_t plen = (Py_ssize_t)pn - 2 - padlen;
    int rc = R_BYTES;
    size_t keep = 0; /* the result's length */
    if (nh == IPPROTO_NONE_) {
        rc = plen < 0 ? -R_IN_HDR : R_DUMMY;
    } else if (plen <= 0) {
        rc = -R_IN_HDR;
    } else if (self->tunnel) {
        size_t inner = 0;
        if (nh == IPPROTO_IPIP_) {
            if (plen < 20 || plain[0] >> 4 != 4)
                rc = R_IN_MODE;
            else if ((inner = be16(plain + 2)) < 20)
                rc = R_IN_HDR;
        } else if (nh == IPPROTO_IPV6_) {
            if (plen < 40 || plain[0] >> 4 != 6)
                rc = R_IN_MODE;
            else
                inner = 40 + (size_t)be16(plain + 4);
        } else {
            rc = R_IN_MODE;
        }
        if (rc == R_BYTES && inner > (size_t)plen)
            rc = R_IN_HDR;
        if (rc == R_BYTES) {
            int otos = self->outer_v6 ? ((p[0] & 0x0F) << 4) | (p[1] >> 4) : p[1];
            if (self->decap_dscp || (self->decap_ecn && (otos & 3) == 3))
                apply_tos(o, inner, otos, self->decap_ecn, self->decap_dscp);
            keep = inner;
        }
    } else {
        memcpy(o, p, head);
        if (self->outer_v6) {
            o[field] = (uint8_t)nh;
            put16(o + 4, (uint32_t)(head - 40 + (size_t)plen));
        } else {
            o[9] = (uint8_t)nh;
            put16(o + 2, (uint32_t)(head + (size_t)plen));
            o[10] = o[11] = 0;
            put16(o + 10, csum_fold(csum_add(0, o, head)));
        }
        keep = head + (size_t)plen;
    }
    if (rc != R_BYTES) {
        Py_DECREF(res);
        res = NULL;
        if (rc < 0) { /* refused before the window: not passed */
            *code = -rc;
            return NULL;
        }
    } else if (keep != (size_t)PyBytes_GET_SIZE(res) &&
               _PyBytes_Resize(&res, (Py_ssize_t)keep) < 0) {
        return NULL; /* res is NULL, MemoryError set */
    }
    /* verified and not refused before the window: advance it */
    *passed = 1;
    if (replay_advance(self, rp, seq_lo, seq_hi)) {
        *moved = 1;
        *new_hi = seq_hi;
    }
    *code = rc;
    return res;
}

/* ipheader.decapsulate_tos, in place on our own result: the outer ECN/DSCP applied. */
static void apply_tos(uint8_t *o, size_t inner, int outer_tos, int ecn, int dscp)
{
    int v4 = o[0] >> 4 == 4;
    int tos = v4 ? o[1] : ((o[0] & 0x0F) << 4) | (o[1] >> 4);
    int nw = dscp ? (outer_tos & 0xFC) | (tos & 3) : tos;
    size_t ihl = (size_t)(o[0] & 0x0F) * 4;
    if (ecn && (outer_tos & 3) == 3 && (nw & 3))
        nw |= 3;
    /* an IPv4 header length that does not fit: left as it is (the reference does too) */
    if (nw == tos || (v4 && (ihl < 20 || ihl > inner)))
        return;
    if (v4) {
        o[1] = (uint8_t)nw;
        o[10] = o[11] = 0;
        put16(o + 10, csum_fold(csum_add(0, o, ihl)));
    } else {
        o[0] = (uint8_t)((o[0] & 0xF0) | (nw >> 4));
        o[1] = (uint8_t)(((nw & 0x0F) << 4) | (o[1] & 0x0F));
    }
}

/* -- the SA object ------------------------------------------------------------------- */

static void SA_dealloc(SAObject *self)
{
    EVP_CIPHER_CTX_free(self->enc);
    EVP_CIPHER_CTX_free(self->dec);
    EVP_CIPHER_CTX_free(self->ivgen);
    EVP_MAC_CTX_free(self->mac);
    PyMem_Free(self->win);
    Py_XDECREF(self->results);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static EVP_CIPHER_CTX *keyed_ctx(const EVP_CIPHER *cipher, const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (!EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, enc)) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    return ctx;
}

static const EVP_CIPHER *aes_cipher(Py_ssize_t key_len, int mode)
{
    switch (key_len) {
    case 16:
        return mode == 0 ? EVP_aes_128_gcm() : mode == 1 ? EVP_aes_128_cbc() : EVP_aes_128_ecb();
    case 24:
        return mode == 0 ? EVP_aes_192_gcm() : EVP_aes_192_cbc();
    case 32:
        return mode == 0 ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
    default:
        return NULL;
    }
}

/*
 * SA(kind, chacha, key, salt, digest, auth_key, icv_len, iv_salt, spi, esn, tunnel,
 *    outer_v6, natt, sport, dport, tfc_padto, saddr, daddr, nopmtudisc, decap_ecn,
 *    decap_dscp, tos_map, window, results)
 */
static int SA_init(SAObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kw[] = {"kind",      "chacha",  "key",       "salt",       "digest",
                         "auth_key",  "icv_len", "iv_salt",   "spi",        "esn",
                         "tunnel",    "outer_v6", "natt",     "sport",      "dport",
                         "tfc_padto", "saddr",   "daddr",     "nopmtudisc", "decap_ecn",
                         "decap_dscp", "tos_map", "window",   "results",    NULL};
    int kind, chacha, icv_len, esn, tunnel, outer_v6, natt, sport, dport, tfc_padto, nopmtu;
    int decap_ecn, decap_dscp, window;
    unsigned int spi;
    Py_buffer key = {0}, salt = {0}, auth_key = {0}, iv_salt = {0}, saddr = {0}, daddr = {0};
    Py_buffer tos_map = {0};
    const char *digest;
    PyObject *results;
    int rc = -1;
    if (self->results != NULL || self->enc != NULL || self->dec != NULL || self->mac != NULL ||
        self->ivgen != NULL || self->win != NULL) {
        /* also after a failed first init: its contexts stay theirs until dealloc */
        PyErr_SetString(PyExc_TypeError, "SA is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "iiy*y*sy*iy*Ippppiiiy*y*pppy*iO!", kw, &kind, &chacha, &key, &salt,
            &digest, &auth_key, &icv_len, &iv_salt, &spi, &esn, &tunnel, &outer_v6, &natt,
            &sport, &dport, &tfc_padto, &saddr, &daddr, &nopmtu, &decap_ecn, &decap_dscp,
            &tos_map, &window, &PyTuple_Type, &results))
        return -1;
    if (PyTuple_GET_SIZE(results) != R_COUNT || tos_map.len != 256 || iv_salt.len < 16 ||
        salt.len != (kind == K_AEAD || kind == K_GMAC ? 4 : 0) || icv_len < 0 ||
        icv_len > MAX_ICV || window < 0 || window > (1 << 16) ||
        saddr.len != (outer_v6 ? 16 : 4) || daddr.len != saddr.len || kind < 0 || kind > 3 ||
        tfc_padto < 0 || tfc_padto > 0xFFFF || (tfc_padto && !tunnel)) {
        PyErr_SetString(PyExc_ValueError, "SA: inconsistent parameters");
        goto done;
    }
    self->kind = kind;
    self->chacha = chacha;
    self->icv_len = icv_len;
    self->esn = esn;
    put32(self->spi, spi);
    memcpy(self->nsalt, salt.buf, (size_t)salt.len);
    {
        const uint8_t *s = iv_salt.buf;
        self->ivs = ((uint64_t)be32(s) << 32) | be32(s + 4);
    }
    if (kind == K_AEAD || kind == K_GMAC) {
        const EVP_CIPHER *c = chacha ? (key.len == 32 ? EVP_chacha20_poly1305() : NULL)
                                     : aes_cipher(key.len, 0);
        if (c == NULL || (kind == K_GMAC && chacha) || (chacha && icv_len != 16) ||
            (icv_len != 8 && icv_len != 12 && icv_len != 16)) {
            PyErr_SetString(PyExc_ValueError, "SA: unsupported AEAD parameters");
            goto done;
        }
        self->iv_len = 8;
        self->block = 1;
        self->enc = keyed_ctx(c, key.buf, 1);
        self->dec = keyed_ctx(c, key.buf, 0);
        if (self->enc == NULL || self->dec == NULL) {
            fail_openssl();
            goto done;
        }
    } else {
        if (kind == K_CBC) {
            const EVP_CIPHER *c = aes_cipher(key.len, 1);
            if (c == NULL) {
                PyErr_SetString(PyExc_ValueError, "SA: unsupported cipher key length");
                goto done;
            }
            self->iv_len = 16;
            self->block = 16;
            self->enc = keyed_ctx(c, key.buf, 1);
            self->dec = keyed_ctx(c, key.buf, 0);
            self->ivgen = keyed_ctx(EVP_aes_128_ecb(), iv_salt.buf, 1);
            if (self->enc == NULL || self->dec == NULL || self->ivgen == NULL) {
                fail_openssl();
                goto done;
            }
        } else {
            self->iv_len = 0;
            self->block = 1;
        }
        if (icv_len) {
            static const uint8_t empty_key[1] = {0};
            OSSL_PARAM params[2];
            EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
            if (mac == NULL) {
                fail_openssl();
                goto done;
            }
            self->mac = EVP_MAC_CTX_new(mac);
            EVP_MAC_free(mac);
            params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
            params[1] = OSSL_PARAM_construct_end();
            if (self->mac == NULL ||
                !EVP_MAC_init(self->mac, auth_key.len ? auth_key.buf : empty_key,
                              (size_t)auth_key.len, params) ||
                EVP_MAC_CTX_get_mac_size(self->mac) < (size_t)icv_len) {
                fail_openssl();
                goto done;
            }
        }
    }
    self->pad_mask = (self->block > 4 ? self->block : 4) - 1;
    self->min_len = 8 + self->iv_len + icv_len + (self->block > 2 ? self->block : 2);
    self->tunnel = tunnel;
    self->outer_v6 = outer_v6;
    self->natt = natt;
    self->sport = sport;
    self->dport = dport;
    /* padto of esp_output: tfcpad already clamped to xfrm_state_mtu by the caller; the
     * kernel refuses tfcpad outside tunnel mode (verify_newsa_info), so does init. */
    self->tfc_padto = tfc_padto;
    self->addr_len = (int)saddr.len;
    memcpy(self->saddr, saddr.buf, (size_t)saddr.len);
    memcpy(self->daddr, daddr.buf, (size_t)daddr.len);
    self->nopmtudisc = nopmtu;
    self->decap_ecn = decap_ecn;
    self->decap_dscp = decap_dscp;
    memcpy(self->tos_map, tos_map.buf, 256);
    self->outer_proto = natt ? IPPROTO_UDP_ : IPPROTO_ESP_;
    self->wsize = window;
    self->wwords = (window + 63) / 64;
    if (self->wwords) {
        self->win = PyMem_Calloc((size_t)self->wwords, 8);
        if (self->win == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    Py_INCREF(results);
    self->results = results;
    rc = 0;
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&salt);
    PyBuffer_Release(&auth_key);
    PyBuffer_Release(&iv_salt);
    PyBuffer_Release(&saddr);
    PyBuffer_Release(&daddr);
    PyBuffer_Release(&tos_map);
    return rc;
}

static int ready(SAObject *self)
{
    if (self->results == NULL) {
        PyErr_SetString(PyExc_TypeError, "SA not initialised");
        return -1;
    }
    return 0;
}

static int packet_of(PyObject *item, Py_buffer *view)
{
    return PyObject_GetBuffer(item, view, PyBUF_SIMPLE);
}

/* The ``life`` argument of encap / decap: (bytes, packets, soft_bytes, soft_packets,
 * hard_bytes, hard_packets) as BatchCount starts them. */
static int parse_life(PyObject *t, Life *l)
{
    if (!PyArg_ParseTuple(t, "KKKKKK;life: six counters", &l->bytes, &l->packets,
                          &l->soft_bytes, &l->soft_packets, &l->hard_bytes, &l->hard_packets))
        return -1;
    l->soft_at = l->hard_at = -1;
    l->soft_kind = l->hard_kind = 0;
    return 0;
}

/* What a batch counted: (bytes, packets, soft_at, soft_kind, hard_at, hard_kind). */
static PyObject *life_result(const Life *l)
{
    return Py_BuildValue("(KKnini)", (unsigned long long)l->bytes,
                         (unsigned long long)l->packets, l->soft_at, l->soft_kind, l->hard_at,
                         l->hard_kind);
}

/*
 * encap(packets, oseq, epoch, limit, wraps, ident, life)
 *   -> (results, verdicts, oseq, epoch, overflowed, nok, ident, life)
 */
static PyObject *SA_encap(SAObject *self, PyObject *args)
{
    PyObject *packets, *life_in, *out = NULL, *verdicts = NULL, *ret = NULL;
    unsigned long long oseq, epoch, limit;
    int wraps;
    unsigned int ident;
    Life life;
    if (ready(self) < 0)
        return NULL;
    if (!PyArg_ParseTuple(args, "O!KKKpIO!", &PyList_Type, &packets, &oseq, &epoch, &limit,
                          &wraps, &ident, &PyTuple_Type, &life_in))
        return NULL;
    if (parse_life(life_in, &life) < 0)
        return NULL;
    PyObject *snap = PyList_AsTuple(packets);
    if (snap == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(snap), i;
    OutSeq sq = {oseq, epoch, limit, wraps, 0};
    unsigned long long nok = 0;
    self->ident = ident & 0xFFFF;
    out = PyList_New(count);
    verdicts = PyBytes_FromStringAndSize(NULL, count);
    if (out == NULL || verdicts == NULL)
        goto fail;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(verdicts);
    for (i = 0; i < count; i++) {
        Py_buffer view;
        int code;
        PyObject *r = NULL;
        if (life.hard_at >= 0) {
            code = R_OUT_EXPIRED; /* the hard limit fired at an earlier packet */
        } else {
            /* a snapshot: a finalizer run by an allocation cannot change what we read */
            PyObject *item = PyTuple_GET_ITEM(snap, i);
            if (packet_of(item, &view) < 0)
                goto fail;
            r = encap_one(self, view.buf, (size_t)view.len, &sq, &code);
            Py_ssize_t len = view.len;
            PyBuffer_Release(&view);
            if (r == NULL && code < 0)
                goto fail;
            if (r != NULL) {
                nok++;
                life_count(&life, i, (uint64_t)len);
            }
        }
        if (r == NULL) {
            r = PyTuple_GET_ITEM(self->results, code);
            Py_INCREF(r);
        }
        v[i] = (uint8_t)code;
        PyList_SET_ITEM(out, i, r);
    }
    PyObject *counted = life_result(&life);
    if (counted == NULL)
        goto fail;
    ret = Py_BuildValue("(NNKKiKIN)", out, verdicts, (unsigned long long)sq.oseq,
                        (unsigned long long)sq.epoch, sq.overflowed, nok,
                        (unsigned int)self->ident, counted);
    Py_DECREF(snap);
    return ret;
fail:
    Py_DECREF(snap);
    Py_XDECREF(out);
    Py_XDECREF(verdicts);
    return NULL;
}

static int load_window(SAObject *self, Py_buffer *bm)
{
    int W = self->wwords, i, b;
    if (bm->len != (Py_ssize_t)W * 8) {
        PyErr_SetString(PyExc_ValueError, "decap: bitmap of the wrong size");
        return -1;
    }
    const uint8_t *s = bm->buf;
    for (i = 0; i < W; i++) {
        uint64_t w = 0;
        for (b = 7; b >= 0; b--)
            w = (w << 8) | s[i * 8 + b];
        self->win[i] = w;
    }
    self->run = 0;
    return 0;
}

static PyObject *store_window(SAObject *self)
{
    int W = self->wwords, i, b;
    win_flush(self);
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)W * 8);
    if (res == NULL)
        return NULL;
    uint8_t *d = (uint8_t *)PyBytes_AS_STRING(res);
    for (i = 0; i < W; i++)
        for (b = 0; b < 8; b++)
            d[i * 8 + b] = (uint8_t)(self->win[i] >> (8 * b));
    return res;
}

/*
 * decap(packets, top, bitmap, life)
 *   -> (results, verdicts, top, bitmap, ngood, d_window, d_replay, advanced, life)
 * ``bitmap``: the window as little-endian bytes (bit k: top - k received), 8 per 64 bits.
 */
static PyObject *SA_decap(SAObject *self, PyObject *args)
{
    PyObject *packets, *life_in, *out = NULL, *verdicts = NULL, *advanced = NULL;
    PyObject *bitmap = NULL;
    unsigned long long top;
    Py_buffer bm;
    Life life;
    if (ready(self) < 0)
        return NULL;
    if (!PyArg_ParseTuple(args, "O!Ky*O!", &PyList_Type, &packets, &top, &bm, &PyTuple_Type,
                          &life_in))
        return NULL;
    int bad = load_window(self, &bm);
    PyBuffer_Release(&bm);
    if (bad < 0 || parse_life(life_in, &life) < 0)
        return NULL;
    PyObject *snap = PyList_AsTuple(packets);
    if (snap == NULL)
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(snap), i;
    Replay rp = {top, 0, 0};
    unsigned long long ngood = 0;
    out = PyList_New(count);
    verdicts = PyBytes_FromStringAndSize(NULL, count);
    advanced = PyList_New(0);
    if (out == NULL || verdicts == NULL || advanced == NULL)
        goto fail;
    uint8_t *v = (uint8_t *)PyBytes_AS_STRING(verdicts);
    for (i = 0; i < count; i++) {
        Py_buffer view;
        int code, ok = 0, moved = 0;
        uint32_t hi = 0;
        PyObject *r = NULL;
        if (life.hard_at >= 0) {
            code = R_IN_EXPIRED; /* the hard limit fired at an earlier packet */
        } else {
            PyObject *item = PyTuple_GET_ITEM(snap, i);
            if (packet_of(item, &view) < 0)
                goto fail;
            r = decap_one(self, view.buf, (size_t)view.len, &rp, &code, &ok, &moved, &hi);
            PyBuffer_Release(&view);
            if (code < 0)
                goto fail;
            if (r != NULL)
                ngood++;
            /* passed the ICV: counted, with 0 bytes for a dummy or a post-ICV drop */
            if (ok)
                life_count(&life, i, r != NULL ? (uint64_t)PyBytes_GET_SIZE(r) : 0);
        }
        if (r == NULL) {
            r = PyTuple_GET_ITEM(self->results, code);
            Py_INCREF(r);
        }
        v[i] = (uint8_t)(code | (ok ? V_PASSED : 0));
        PyList_SET_ITEM(out, i, r);
        if (moved) {
            PyObject *h = PyLong_FromUnsignedLong(hi);
            if (h == NULL || PyList_Append(advanced, h) < 0) {
                Py_XDECREF(h);
                goto fail;
            }
            Py_DECREF(h);
        }
    }
    bitmap = store_window(self);
    if (bitmap == NULL)
        goto fail;
    PyObject *counted = life_result(&life);
    if (counted == NULL) {
        Py_DECREF(bitmap);
        goto fail;
    }
    Py_DECREF(snap);
    return Py_BuildValue("(NNKNKKKNN)", out, verdicts, (unsigned long long)rp.top, bitmap,
                         ngood, (unsigned long long)rp.d_window,
                         (unsigned long long)rp.d_replay, advanced, counted);
fail:
    /* an internal error mid-batch: the caller keeps its window as it was */
    Py_DECREF(snap);
    Py_XDECREF(out);
    Py_XDECREF(verdicts);
    Py_XDECREF(advanced);
    return NULL;
}

/* -- crypto offload: the NIC's halves (crypto_offload.py) ----------------------------- */

/* The kernel's crypto offload RX status (enum in include/net/xfrm.h). */
#define CRYPTO_SUCCESS 1
#define CRYPTO_TRANSPORT_ESP_AUTH_FAILED 8
#define CRYPTO_TUNNEL_ESP_AUTH_FAILED 32
#define CRYPTO_INVALID_PACKET_SYNTAX 64
#define CRYPTO_INVALID_PROTOCOL 128

/*
 * nic_seal(frame, seq) -> bytes or None: crypto_offload.nic_tx_seal. The host's frame
 * with its ESP part sealed in a copy: IV, ciphertext of frame[esp + 8 + iv : -icv], ICV.
 * None for a frame the NIC cannot seal (no ESP part where the SA puts it, no room for the
 * IV and ICV, CBC payload not a whole number of blocks).
 */
static PyObject *SA_nic_seal(SAObject *self, PyObject *args)
{
    Py_buffer f;
    unsigned long long seq;
    PyObject *res = NULL;
    size_t start, end, field;
    if (ready(self) < 0)
        return NULL;
    if (!PyArg_ParseTuple(args, "y*K", &f, &seq))
        return NULL;
    const uint8_t *p = f.buf;
    size_t n = (size_t)f.len;
    if (locate_esp(self, p, n, &start, &end, &field) != R_BYTES)
        goto none;
    size_t body = start + 8 + (size_t)self->iv_len, icv = (size_t)self->icv_len;
    if (n < body + icv) /* no room for the IV and the ICV: sealing would grow the frame */
        goto none;
    size_t plen = n - body - icv; /* the payload slice frame[body : len - icv] */
    if (self->kind == K_CBC && plen % (size_t)self->block)
        goto none;
    res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(body + plen + icv));
    if (res == NULL)
        goto done;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(res);
    memcpy(o, p, start);
    memcpy(o + body, p + body, plen);
    if (seal(self, o + start, plen, (uint64_t)seq) < 0)
        Py_CLEAR(res);
    goto done;
none:
    res = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&f);
    return res;
}

/*
 * nic_open(packet, seq_hi) -> (status, bytes or None): crypto_offload.nic_rx_crypto.
 * On CRYPTO_SUCCESS a copy of the packet with the ESP ciphertext replaced by the
 * plaintext (headers, IV, trailer and ICV where they were); otherwise the status alone.
 */
static PyObject *SA_nic_open(SAObject *self, PyObject *args)
{
    Py_buffer f;
    unsigned int seq_hi;
    PyObject *plain = NULL, *res = NULL;
    size_t start, end, field;
    int status;
    if (ready(self) < 0)
        return NULL;
    if (!PyArg_ParseTuple(args, "y*I", &f, &seq_hi))
        return NULL;
    const uint8_t *p = f.buf;
    size_t n = (size_t)f.len;
    int rc = locate_esp(self, p, n, &start, &end, &field);
    if (rc == R_KEEPALIVE || rc == R_IKE) {
        status = CRYPTO_INVALID_PROTOCOL;
    } else if (rc != R_BYTES) {
        status = CRYPTO_INVALID_PACKET_SYNTAX;
    } else {
        Py_ssize_t got = open_esp(self, p + start, end - start, seq_hi, 0, &plain);
        if (got == OPEN_ERROR)
            goto done;
        if (got == -R_IN_PROTO) {
            status = self->tunnel ? CRYPTO_TUNNEL_ESP_AUTH_FAILED : CRYPTO_TRANSPORT_ESP_AUTH_FAILED;
        } else if (got < 0) {
            status = CRYPTO_INVALID_PACKET_SYNTAX;
        } else {
            PyObject *frame = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
            if (frame == NULL)
                goto done;
            memcpy(PyBytes_AS_STRING(frame) + start + 8 + self->iv_len, PyBytes_AS_STRING(plain),
                   (size_t)got);
            res = Py_BuildValue("(iN)", CRYPTO_SUCCESS, frame);
            goto done;
        }
    }
    res = Py_BuildValue("(iO)", status, Py_None);
done:
    Py_XDECREF(plain);
    PyBuffer_Release(&f);
    return res;
}

static PyMethodDef SA_methods[] = {
    {"encap", (PyCFunction)SA_encap, METH_VARARGS, "Encapsulate a batch (see sa.py)."},
    {"decap", (PyCFunction)SA_decap, METH_VARARGS, "Decapsulate a batch (see sa.py)."},
    {"nic_seal", (PyCFunction)SA_nic_seal, METH_VARARGS, "Crypto offload TX: seal a frame."},
    {"nic_open", (PyCFunction)SA_nic_open, METH_VARARGS, "Crypto offload RX: open a packet."},
    {NULL, NULL, 0, NULL}};

static PyObject *SA_repr(SAObject *self)
{
    /* never the keys */
    return PyUnicode_FromFormat("<_esp.SA kind=%d icv=%d>", self->kind, self->icv_len);
}

static PyTypeObject SAType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = MODULE_NAME ".SA",
    .tp_basicsize = sizeof(SAObject),
    .tp_dealloc = (destructor)SA_dealloc,
    .tp_repr = (reprfunc)SA_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One SA's native ESP batch path.",
    .tp_methods = SA_methods,
    .tp_init = (initproc)SA_init,
    .tp_new = PyType_GenericNew,
};

/*
 * raw_seal(cipher, key, packets) -> list of bytes: for the benchmark only.
 * One EVP AEAD (or CBC + HMAC-SHA256) seal per packet with the key set once, a counter
 * nonce and an 8-byte AAD: the floor any ESP implementation on EVP pays per packet.
 */
static PyObject *raw_seal(PyObject *mod, PyObject *args)
{
    const char *name;
    Py_buffer key;
    PyObject *packets, *out = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    EVP_MAC_CTX *mac = NULL;
    int is_cbc;
    (void)mod;
    if (!PyArg_ParseTuple(args, "sy*O!", &name, &key, &PyList_Type, &packets))
        return NULL;
    is_cbc = strcmp(name, "cbc-hmac-sha256") == 0;
    const EVP_CIPHER *c = strcmp(name, "chacha20-poly1305") == 0 ? EVP_chacha20_poly1305()
                          : is_cbc                               ? aes_cipher(16, 1)
                                                                 : aes_cipher(16, 0);
    if (key.len != (strcmp(name, "chacha20-poly1305") == 0 ? 32 : 16)) {
        PyErr_SetString(PyExc_ValueError, "raw_seal: key of the wrong length");
        goto done;
    }
    ctx = keyed_ctx(c, key.buf, 1);
    if (ctx == NULL) {
        fail_openssl();
        goto done;
    }
    if (is_cbc) {
        OSSL_PARAM params[2];
        EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
        mac = m ? EVP_MAC_CTX_new(m) : NULL;
        EVP_MAC_free(m);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        if (mac == NULL || !EVP_MAC_init(mac, key.buf, (size_t)key.len, params)) {
            fail_openssl();
            goto done;
        }
    }
    Py_ssize_t count = PyList_GET_SIZE(packets), i;
    out = PyList_New(count);
    if (out == NULL)
        goto done;
    for (i = 0; i < count; i++) {
        Py_buffer v;
        uint8_t nonce[16] = {0}, aad[8] = {1, 2, 3, 4, 0, 0, 0, 0};
        int outl = 0, fin = 0;
        if (PyObject_GetBuffer(PyList_GET_ITEM(packets, i), &v, PyBUF_SIMPLE) < 0)
            goto fail;
        size_t n = (size_t)v.len, clen = is_cbc ? (n + 15) / 16 * 16 : n;
        PyObject *r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)clen + 16);
        if (r == NULL) {
            PyBuffer_Release(&v);
            goto fail;
        }
        PyList_SET_ITEM(out, i, r);
        uint8_t *o = (uint8_t *)PyBytes_AS_STRING(r);
        put64(nonce + 4, (uint64_t)i + 1);
        memcpy(o, v.buf, n);
        memset(o + n, 0, clen - n);
        PyBuffer_Release(&v);
        int ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce);
        if (is_cbc) {
            size_t ml = 0;
            uint8_t full[EVP_MAX_MD_SIZE];
            ok = ok && EVP_EncryptUpdate(ctx, o, &outl, o, (int)clen) &&
                 EVP_MAC_init(mac, NULL, 0, NULL) && EVP_MAC_update(mac, o, clen) &&
                 EVP_MAC_final(mac, full, &ml, sizeof(full));
            memcpy(o + clen, full, 16);
        } else {
            ok = ok && EVP_EncryptUpdate(ctx, NULL, &outl, aad, 8) &&
                 EVP_EncryptUpdate(ctx, o, &outl, o, (int)n) &&
                 EVP_EncryptFinal_ex(ctx, o + outl, &fin) &&
                 EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, o + n);
        }
        if (!ok) {
            fail_openssl();
            goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    EVP_CIPHER_CTX_free(ctx);
    EVP_MAC_CTX_free(mac);
    PyBuffer_Release(&key);
    return out;
}

/* -- flow keys: datapath.key_runs, the same rules ----------------------------------- */

enum { KEY_FLOW = 0, KEY_ESP4 = 1 };
#define MAX_KEY 37

/* datapath._flow_cache_key / _esp_state_key of p[0:n] into ``key``: its length, or 0
 * for None (not simple enough to key on). */
static size_t cache_key(const uint8_t *p, size_t n, int kind, uint8_t *key)
{
    if (kind == KEY_ESP4) {
        if (n < 28 || p[0] != 0x45 || p[9] != IPPROTO_ESP_)
            return 0;
        memcpy(key, p + 16, 8); /* daddr, SPI */
        return 8;
    }
    if (n >= 24 && p[0] == 0x45) {
        if ((p[6] & 0x3F) || p[7] || p[9] == 47)
            return 0; /* a fragment, or GRE */
        key[0] = p[9];
        memcpy(key + 1, p + 12, 12);
        return 13;
    }
    if (n >= 44 && p[0] >> 4 == 6) {
        int nh = p[6];
        if (nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_FRAGMENT_ ||
            nh == IPPROTO_ESP_ || nh == 51 || nh == IPPROTO_DSTOPTS_ || nh == 47)
            return 0;
        key[0] = p[6];
        memcpy(key + 1, p + 8, 36);
        return 37;
    }
    return 0;
}

/*
 * key_runs(items, kind) -> [(key or None, end), ...]: consecutive items with the same
 * cache key as one run ending before index ``end``; items that are not bytes, or have no
 * key, get None (and consecutive ones share a run too). A bytes object per run, not per
 * packet.
 */
static PyObject *key_runs(PyObject *mod, PyObject *args)
{
    PyObject *items, *keys = NULL, *runs = NULL;
    int kind;
    uint8_t cur[MAX_KEY], prev[MAX_KEY];
    size_t cur_len, prev_len = 0;
    Py_ssize_t i, count, nruns = 0, *ends = NULL;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!i", &PyList_Type, &items, &kind))
        return NULL;
    if (kind != KEY_FLOW && kind != KEY_ESP4) {
        PyErr_SetString(PyExc_ValueError, "key_runs: unknown kind");
        return NULL;
    }
    count = PyList_GET_SIZE(items);
    keys = PyList_New(0);
    ends = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count ? count : 1));
    if (keys == NULL || ends == NULL)
        goto done;
    /* nothing in this loop runs Python code: the list and its items stay as they are */
    for (i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        cur_len = 0;
        if (PyBytes_CheckExact(item))
            cur_len = cache_key((const uint8_t *)PyBytes_AS_STRING(item),
                                (size_t)PyBytes_GET_SIZE(item), kind, cur);
        if (nruns && cur_len == prev_len && memcmp(cur, prev, cur_len) == 0) {
            ends[nruns - 1] = i + 1; /* the same key (or None again): the run grows */
            continue;
        }
        PyObject *key = cur_len ? PyBytes_FromStringAndSize((const char *)cur, (Py_ssize_t)cur_len)
                                : Py_NewRef(Py_None);
        if (key == NULL || PyList_Append(keys, key) < 0) {
            Py_XDECREF(key);
            goto done;
        }
        Py_DECREF(key);
        ends[nruns++] = i + 1;
        memcpy(prev, cur, cur_len);
        prev_len = cur_len;
    }
    runs = PyList_New(nruns);
    if (runs == NULL)
        goto done;
    for (i = 0; i < nruns; i++) {
        PyObject *run = Py_BuildValue("(On)", PyList_GET_ITEM(keys, i), ends[i]);
        if (run == NULL) {
            Py_CLEAR(runs);
            goto done;
        }
        PyList_SET_ITEM(runs, i, run);
    }
done:
    Py_XDECREF(keys);
    PyMem_Free(ends);
    if (ends == NULL && runs == NULL && !PyErr_Occurred())
        PyErr_NoMemory();
    return runs;
}

static PyMethodDef module_methods[] = {
    {"raw_seal", raw_seal, METH_VARARGS, "Benchmark only: one EVP seal per packet."},
    {"key_runs", key_runs, METH_VARARGS, "Runs of items with the same flow cache key."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, MODULE_NAME, "The native ESP batch path (see sa.py, esp.py).", -1,
    module_methods,        NULL,        NULL,                                             NULL,
    NULL};

PyMODINIT_FUNC PyInit__esp(void)
{
    PyObject *m;
    if (PyType_Ready(&SAType) < 0)
        return NULL;
    m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    NativeError = PyErr_NewException(MODULE_NAME ".NativeError", PyExc_RuntimeError, NULL);
    if (NativeError == NULL || PyModule_AddObject(m, "NativeError", NativeError) < 0) {
        Py_XDECREF(NativeError);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&SAType);
    if (PyModule_AddObject(m, "SA", (PyObject *)&SAType) < 0) {
        Py_DECREF(&SAType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "OPENSSL_VERSION", OpenSSL_version(OPENSSL_VERSION)) < 0 ||
        PyModule_AddIntConstant(m, "R_COUNT", R_COUNT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
