/*
 * rmas.audit._speedups: the audit trail's per-entry work, in C.
 *
 * Why in-house C: every document a hub answers costs one HMAC-SHA256 (its document key, in the
 * hub) and one SHA-256 link of the chain plus a check of its bytes (in the SQLite writer). In
 * Python each is a handful of calls whose overhead is many times the hashing itself
 * (docs/benchmarks.md, "mTLS and audit": 13,000 instructions for one HMAC through hashlib's
 * objects, 32,000 for one entry in the writer); no maintained library chains hashes over our
 * wire form or computes an HMAC without those objects. The hashing is OpenSSL's (the libcrypto
 * Python's own hashlib uses); only the loops and the format checks are written here.
 *
 * Optional: when this module cannot be built or loaded, rmas.audit.entry and
 * rmas.audit.writer do the same in Python (RMAS_AUDIT_SPEEDUPS=0 forces that), and the tests
 * hold the two to identical results, malformed input included.
 *
 *   Keyer(key: bytes)                       HMAC-SHA256 with the key's pads hashed once
 *   Keyer.key_of(economy: str, number: str) -> str: hex HMAC of "{economy}:{number}" (UTF-8)
 *   chain(prev_hex: bytes, tail_seq: int, count: int, group: bytes)
 *       -> (hashes: bytes, last_hex: bytes, body: bytes | None) | None
 *     Checks a group in the writer's wire form (rmas.audit.writer: 0xFF NUL, then 11 fields
 *     joined by NUL, per entry; entries joined by NUL; UTF-8), links its entries onto the
 *     chain after the entry tail_seq whose hash is prev_hex (SHA-256 of prev_hex NUL seq NUL
 *     body, seq from tail_seq + 1 on: rmas.audit.chain), and translates it to
 *     its stored form (NUL -> 0x1F, 0xFF -> 0x1E; None when a field holds a control
 *     character, which the stored form cannot carry). None instead of a tuple when the group
 *     is malformed: the Python check then says how (rmas.audit.writer.bodies_of).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* SHA256_Init/Update/Final: deprecated in OpenSSL 3 in favour of EVP, whose context copies
 * allocate; these keep a context a plain struct, copied by assignment. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#define NFIELDS 11

static const char HEX[] = "0123456789abcdef";

static void
to_hex(const unsigned char *digest, char *out)
{
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = HEX[digest[i] >> 4];
        out[2 * i + 1] = HEX[digest[i] & 15];
    }
}

/* -- Keyer ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    SHA256_CTX inner;
    SHA256_CTX outer;
    int ready;
} Keyer;

static int
Keyer_init(Keyer *self, PyObject *args, PyObject *kwds)
{
    Py_buffer key;
    unsigned char k[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "Keyer() takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "y*:Keyer", &key)) {
        return -1;
    }
    memset(k, 0, sizeof k);
    if (key.len > SHA256_CBLOCK) {
        SHA256(key.buf, (size_t)key.len, k);
    }
    else {
        memcpy(k, key.buf, (size_t)key.len);
    }
    PyBuffer_Release(&key);
    for (int i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    SHA256_Init(&self->inner);
    SHA256_Update(&self->inner, pad, sizeof pad);
    for (int i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    SHA256_Init(&self->outer);
    SHA256_Update(&self->outer, pad, sizeof pad);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    self->ready = 1;
    return 0;
}

static void
Keyer_dealloc(Keyer *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    OPENSSL_cleanse(&self->inner, sizeof self->inner);
    OPENSSL_cleanse(&self->outer, sizeof self->outer);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
Keyer_key_of(Keyer *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t la, lb;
    const char *a, *b;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    PyObject *out;
    if (!self->ready) {
        PyErr_SetString(PyExc_ValueError, "Keyer was not initialised");
        return NULL;
    }
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "key_of(economy: str, number: str)");
        return NULL;
    }
    a = PyUnicode_AsUTF8AndSize(args[0], &la);
    if (a == NULL) {
        return NULL;
    }
    b = PyUnicode_AsUTF8AndSize(args[1], &lb);
    if (b == NULL) {
        return NULL;
    }
    ctx = self->inner;
    SHA256_Update(&ctx, a, (size_t)la);
    SHA256_Update(&ctx, ":", 1);
    SHA256_Update(&ctx, b, (size_t)lb);
    SHA256_Final(digest, &ctx);
    ctx = self->outer;
    SHA256_Update(&ctx, digest, sizeof digest);
    SHA256_Final(digest, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    out = PyUnicode_New(2 * SHA256_DIGEST_LENGTH, 127);
    if (out == NULL) {
        return NULL;
    }
    to_hex(digest, (char *)PyUnicode_DATA(out));
    return out;
}

static PyMethodDef Keyer_methods[] = {
    {"key_of", (PyCFunction)(void (*)(void))Keyer_key_of, METH_FASTCALL,
     "key_of(economy, number): hex HMAC-SHA256 of \"{economy}:{number}\" in UTF-8."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
Keyer_repr(PyObject *self)
{
    return PyUnicode_FromString("Keyer(<secret>)");
}

static PyType_Slot Keyer_slots[] = {
    {Py_tp_doc, "HMAC-SHA256 under one key, its pads hashed once."},
    {Py_tp_init, Keyer_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Keyer_dealloc},
    {Py_tp_methods, Keyer_methods},
    {Py_tp_repr, Keyer_repr},
    {0, NULL},
};

static PyType_Spec Keyer_spec = {
    .name = "rmas.audit._speedups.Keyer",
    .basicsize = sizeof(Keyer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Keyer_slots,
};

/* -- chain ------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence starting at p (first byte >= 0x80), as Python's
 * strict decoder accepts it (no overlong forms, no surrogates, nothing above U+10FFFF); 0 if
 * there is none. */
static Py_ssize_t
utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    Py_ssize_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) {
            lo = 0xA0;
        }
        else if (c == 0xED) {
            hi = 0x9F;
        }
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) {
            lo = 0x90;
        }
        else if (c == 0xF4) {
            hi = 0x8F;
        }
    }
    else {
        return 0;
    }
    if (end - p <= need) {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (Py_ssize_t i = 2; i <= need; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return need + 1;
}

/* Decimal digits of v into buf (at least 20 bytes); their count. */
static int
decimal(unsigned long long v, char *buf)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

static PyObject *
chain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *prev_obj, *group_obj, *hashes = NULL, *body = NULL, *last = NULL, *result;
    unsigned long long seq;
    Py_ssize_t count, n, pos, e;
    const unsigned char *g;
    unsigned char *h, *out;
    char prev[2 * SHA256_DIGEST_LENGTH], digits[20];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int control = 0;
    SHA256_CTX ctx;

    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) ||
        !PyLong_Check(args[2]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "chain(prev_hex: bytes, first_seq: int, count: int, group: bytes)");
        return NULL;
    }
    prev_obj = args[0];
    group_obj = args[3];
    if (PyBytes_GET_SIZE(prev_obj) != (Py_ssize_t)sizeof prev) {
        PyErr_SetString(PyExc_ValueError, "prev_hex must be 64 bytes");
        return NULL;
    }
    seq = PyLong_AsUnsignedLongLong(args[1]);
    if (seq == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    count = PyLong_AsSsize_t(args[2]);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    g = (const unsigned char *)PyBytes_AS_STRING(group_obj);
    n = PyBytes_GET_SIZE(group_obj);
    if (count < 1 || n < 2 || g[0] != 0xFF || g[1] != 0x00 ||
        count > (PY_SSIZE_T_MAX / SHA256_DIGEST_LENGTH) ||
        seq > ULLONG_MAX - (unsigned long long)count) {
        Py_RETURN_NONE;
    }
    hashes = PyBytes_FromStringAndSize(NULL, count * SHA256_DIGEST_LENGTH);
    body = PyBytes_FromStringAndSize(NULL, n);
    if (hashes == NULL || body == NULL) {
        goto fail;
    }
    h = (unsigned char *)PyBytes_AS_STRING(hashes);
    out = (unsigned char *)PyBytes_AS_STRING(body);
    out[0] = 0x1E;
    out[1] = 0x1F;
    memcpy(prev, PyBytes_AS_STRING(prev_obj), sizeof prev);

    pos = 2;
    for (e = 0; e < count; e++) {
        Py_ssize_t start = pos, end = -1;
        int fields = 1;
        while (pos < n) {
            unsigned char c = g[pos];
            if (c == 0x00) {
                if (fields == NFIELDS) {
                    end = pos; /* the entries' separator: NUL 0xFF NUL */
                    break;
                }
                fields++;
                out[pos++] = 0x1F;
            }
            else if (c < 0x20) {
                control = 1;
                out[pos++] = c;
            }
            else if (c < 0x80) {
                out[pos++] = c;
            }
            else {
                Py_ssize_t len = utf8_sequence(g + pos, g + n);
                if (len == 0) {
                    goto malformed;
                }
                memcpy(out + pos, g + pos, (size_t)len);
                pos += len;
            }
        }
        if (end < 0) { /* the group's end */
            if (fields != NFIELDS || e != count - 1) {
                goto malformed;
            }
            end = n;
        }
        else {
            if (e == count - 1 || n - end < 3 || g[end + 1] != 0xFF || g[end + 2] != 0x00) {
                goto malformed;
            }
            out[end] = 0x1F;
            out[end + 1] = 0x1E;
            out[end + 2] = 0x1F;
        }
        seq++;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, prev, sizeof prev);
        SHA256_Update(&ctx, "", 1);
        SHA256_Update(&ctx, digits, (size_t)decimal(seq, digits));
        SHA256_Update(&ctx, "", 1);
        SHA256_Update(&ctx, g + start, (size_t)(end - start));
        SHA256_Final(digest, &ctx);
        memcpy(h + e * SHA256_DIGEST_LENGTH, digest, sizeof digest);
        to_hex(digest, prev);
        pos = end + 3;
    }
    if (pos < n) {
        goto malformed;
    }
    last = PyBytes_FromStringAndSize(prev, sizeof prev);
    if (last == NULL) {
        goto fail;
    }
    if (control) {
        Py_SETREF(body, Py_NewRef(Py_None));
    }
    result = PyTuple_Pack(3, hashes, last, body);
    Py_DECREF(hashes);
    Py_DECREF(last);
    Py_DECREF(body);
    return result;

malformed:
    Py_XDECREF(hashes);
    Py_XDECREF(body);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(hashes);
    Py_XDECREF(body);
    return NULL;
}

/* -- module ------------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"chain", (PyCFunction)(void (*)(void))chain, METH_FASTCALL,
     "chain(prev_hex, first_seq, count, group) -> (hashes, last_hex, body or None), or None "
     "when the group is malformed."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    PyObject *keyer = PyType_FromModuleAndSpec(module, &Keyer_spec, NULL);
    if (keyer == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "Keyer", keyer) < 0) {
        Py_DECREF(keyer);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rmas.audit._speedups",
    .m_doc = "The audit trail's per-entry hashing and checks in C (see rmas/audit/_speedups.c).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
