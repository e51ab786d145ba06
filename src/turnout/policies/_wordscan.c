/* Whole-word keyword matching and line counting for the prompt-reading policies,
 * in one pass over the text and without building a Python object per word.
 *
 * The rules are those of turnout.policies.textscan (the pure-Python engine, which
 * stays the reference and the fallback): ASCII letters and digits are lower-cased;
 * the dropped characters (' " ` * , . ; : ! ? and the curly quotes and guillemets)
 * are deleted; every other character that is not a letter or a digit separates
 * words.  Keywords here are all ASCII (the Python side only builds a Matcher then),
 * so a word holding a letter or digit beyond ASCII never matches; U+0130 (capital I
 * with dot) reads as "i" and a separator and the Kelvin sign as "k", as their lower
 * case does.  A keyword of several words matches those words in that order, one
 * separator apart in ASCII text and whatever separates them in other text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_PHRASE 32 /* words in one keyword */
#define MAX_WORD 255  /* bytes in one of its words */

/* ASCII classes: a letter or digit is its lower case; SEP separates; DROP is deleted. */
#define SEP 0
#define DROP 1
static unsigned char ascii_class[128];

static void
init_classes(void)
{
    for (int c = 0; c < 128; c++) {
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
            ascii_class[c] = (unsigned char)c;
        }
        else if (c >= 'A' && c <= 'Z') {
            ascii_class[c] = (unsigned char)(c - 'A' + 'a');
        }
        else {
            ascii_class[c] = SEP;
        }
    }
    for (const char *p = "'\"`*,.;:!?"; *p; p++) {
        ascii_class[(unsigned char)*p] = DROP;
    }
}

typedef struct {
    PyObject_HEAD
    Py_ssize_t npatterns;
    PyObject *patterns;  /* tuple of tuples of bytes, as given (for pickling) */
    PyObject *labels;    /* tuple: what find() returns for each pattern */
    Py_ssize_t nwords;   /* distinct words of every pattern */
    char *arena;         /* the words' bytes, one after another */
    Py_ssize_t *word_at; /* nwords + 1 offsets into arena */
    uint32_t *word_hash;
    int32_t *slots; /* open addressing: word id, or -1 */
    size_t mask;
    Py_ssize_t maxlen; /* the longest word */
    /* per word (CSR): one-word patterns it is, multi-word patterns it ends */
    Py_ssize_t *single_at;
    int32_t *singles;
    Py_ssize_t *ending_at;
    int32_t *endings;     /* sorted by their next-to-last word */
    int32_t *ending_prev; /* that word, for each of endings */
    /* per pattern: its words as ids */
    Py_ssize_t *pattern_at;
    int32_t *pattern_words;
} Matcher;

static uint32_t
hash_bytes(const char *s, Py_ssize_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

static int32_t
lookup(const Matcher *m, const char *s, Py_ssize_t n, uint32_t h)
{
    size_t i = h & m->mask;
    for (;;) {
        int32_t id = m->slots[i];
        if (id < 0) {
            return -1;
        }
        if (m->word_hash[id] == h && m->word_at[id + 1] - m->word_at[id] == n &&
            memcmp(m->arena + m->word_at[id], s, (size_t)n) == 0) {
            return id;
        }
        i = (i + 1) & m->mask;
    }
}

static int
Matcher_traverse(Matcher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->patterns);
    Py_VISIT(self->labels);
    return 0;
}

static int
Matcher_clear(Matcher *self)
{
    Py_CLEAR(self->patterns);
    Py_CLEAR(self->labels);
    return 0;
}

static void
Matcher_dealloc(Matcher *self)
{
    PyObject_GC_UnTrack(self);
    Matcher_clear(self);
    PyMem_Free(self->arena);
    PyMem_Free(self->word_at);
    PyMem_Free(self->word_hash);
    PyMem_Free(self->slots);
    PyMem_Free(self->single_at);
    PyMem_Free(self->singles);
    PyMem_Free(self->ending_at);
    PyMem_Free(self->endings);
    PyMem_Free(self->ending_prev);
    PyMem_Free(self->pattern_at);
    PyMem_Free(self->pattern_words);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Build the tables from patterns (a sequence of tuples of non-empty bytes words, lower
 * case ASCII letters and digits) and labels (one object per pattern). */
static int
Matcher_init(Matcher *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"patterns", "labels", NULL};
    PyObject *patterns_arg, *labels_arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Matcher", kwlist, &patterns_arg,
                                     &labels_arg)) {
        return -1;
    }
    PyObject *patterns = PySequence_Tuple(patterns_arg);
    if (patterns == NULL) {
        return -1;
    }
    PyObject *labels = PySequence_Tuple(labels_arg);
    if (labels == NULL) {
        Py_DECREF(patterns);
        return -1;
    }
    /* checked after the conversions, which may run Python code (that could init self) */
    if (self->arena != NULL || self->labels != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Matcher is already initialised");
        goto fail;
    }
    Py_ssize_t np = PyTuple_GET_SIZE(patterns);
    if (PyTuple_GET_SIZE(labels) != np) {
        PyErr_SetString(PyExc_ValueError, "one label per pattern");
        goto fail;
    }
    /* first pass: validate, count words and bytes */
    Py_ssize_t total_words = 0, total_bytes = 0;
    for (Py_ssize_t p = 0; p < np; p++) {
        PyObject *pat = PyTuple_GET_ITEM(patterns, p);
        if (!PyTuple_Check(pat) || PyTuple_GET_SIZE(pat) == 0 ||
            PyTuple_GET_SIZE(pat) > MAX_PHRASE) {
            PyErr_Format(PyExc_ValueError, "pattern %zd: a tuple of 1 to %d words", p,
                         MAX_PHRASE);
            goto fail;
        }
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pat); k++) {
            PyObject *w = PyTuple_GET_ITEM(pat, k);
            if (!PyBytes_Check(w) || PyBytes_GET_SIZE(w) == 0) {
                PyErr_Format(PyExc_ValueError, "pattern %zd: words are non-empty bytes", p);
                goto fail;
            }
            const char *s = PyBytes_AS_STRING(w);
            for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(w); i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == 0 || c >= 128 || ascii_class[c] != c) {
                    PyErr_Format(PyExc_ValueError,
                                 "pattern %zd: words are lower-case ASCII letters and digits",
                                 p);
                    goto fail;
                }
            }
            if (PyBytes_GET_SIZE(w) > MAX_WORD) {
                PyErr_Format(PyExc_ValueError, "pattern %zd: a word of more than %d bytes",
                             p, MAX_WORD);
                goto fail;
            }
            total_words++;
            total_bytes += PyBytes_GET_SIZE(w);
        }
    }
    size_t nslots = 8;
    while (nslots < (size_t)total_words * 2 + 2) {
        nslots <<= 1;
    }
    self->npatterns = np;
    self->arena = PyMem_Malloc((size_t)total_bytes + 1);
    self->word_at = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(total_words + 1));
    self->word_hash = PyMem_Malloc(sizeof(uint32_t) * (size_t)(total_words + 1));
    self->slots = PyMem_Malloc(sizeof(int32_t) * nslots);
    self->pattern_at = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(np + 1));
    self->pattern_words = PyMem_Malloc(sizeof(int32_t) * (size_t)(total_words + 1));
    if (!self->arena || !self->word_at || !self->word_hash || !self->slots ||
        !self->pattern_at || !self->pattern_words) {
        PyErr_NoMemory();
        goto fail;
    }
    memset(self->slots, 0xff, sizeof(int32_t) * nslots);
    self->mask = nslots - 1;
    self->nwords = 0;
    self->word_at[0] = 0;
    self->maxlen = 0;
    /* second pass: intern the words, spell each pattern as word ids */
    Py_ssize_t nw = 0;
    for (Py_ssize_t p = 0; p < np; p++) {
        PyObject *pat = PyTuple_GET_ITEM(patterns, p);
        self->pattern_at[p] = nw;
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(pat); k++) {
            PyObject *w = PyTuple_GET_ITEM(pat, k);
            const char *s = PyBytes_AS_STRING(w);
            Py_ssize_t n = PyBytes_GET_SIZE(w);
            uint32_t h = hash_bytes(s, n);
            int32_t id = lookup(self, s, n, h);
            if (id < 0) {
                id = (int32_t)self->nwords++;
                memcpy(self->arena + self->word_at[id], s, (size_t)n);
                self->word_at[id + 1] = self->word_at[id] + n;
                self->word_hash[id] = h;
                size_t i = h & self->mask;
                while (self->slots[i] >= 0) {
                    i = (i + 1) & self->mask;
                }
                self->slots[i] = id;
                if (n > self->maxlen) {
                    self->maxlen = n;
                }
            }
            self->pattern_words[nw++] = id;
        }
    }
    self->pattern_at[np] = nw;
    /* per word: the one-word patterns it is and the phrases it ends (counting sort) */
    Py_ssize_t words = self->nwords;
    self->single_at = PyMem_Calloc((size_t)words + 1, sizeof(Py_ssize_t));
    self->ending_at = PyMem_Calloc((size_t)words + 1, sizeof(Py_ssize_t));
    self->singles = PyMem_Malloc(sizeof(int32_t) * (size_t)(np + 1));
    self->endings = PyMem_Malloc(sizeof(int32_t) * (size_t)(np + 1));
    self->ending_prev = PyMem_Malloc(sizeof(int32_t) * (size_t)(np + 1));
    if (!self->single_at || !self->ending_at || !self->singles || !self->endings ||
        !self->ending_prev) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t p = 0; p < np; p++) {
        Py_ssize_t len = self->pattern_at[p + 1] - self->pattern_at[p];
        int32_t last = self->pattern_words[self->pattern_at[p + 1] - 1];
        (len == 1 ? self->single_at : self->ending_at)[last + 1]++;
    }
    for (Py_ssize_t w = 0; w < words; w++) {
        self->single_at[w + 1] += self->single_at[w];
        self->ending_at[w + 1] += self->ending_at[w];
    }
    Py_ssize_t *single_fill = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)words + 1));
    Py_ssize_t *ending_fill = PyMem_Malloc(sizeof(Py_ssize_t) * ((size_t)words + 1));
    if (!single_fill || !ending_fill) {
        PyMem_Free(single_fill);
        PyMem_Free(ending_fill);
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(single_fill, self->single_at, sizeof(Py_ssize_t) * ((size_t)words + 1));
    memcpy(ending_fill, self->ending_at, sizeof(Py_ssize_t) * ((size_t)words + 1));
    for (Py_ssize_t p = 0; p < np; p++) {
        Py_ssize_t len = self->pattern_at[p + 1] - self->pattern_at[p];
        int32_t last = self->pattern_words[self->pattern_at[p + 1] - 1];
        if (len == 1) {
            self->singles[single_fill[last]++] = (int32_t)p;
        }
        else {
            self->endings[ending_fill[last]++] = (int32_t)p;
        }
    }
    PyMem_Free(single_fill);
    PyMem_Free(ending_fill);
    /* each word's phrases by their next-to-last word, for a binary search when the
     * word is read (with many phrases on one word, only those that can match are tried) */
    for (Py_ssize_t w = 0; w < words; w++) {
        Py_ssize_t lo = self->ending_at[w], hi = self->ending_at[w + 1];
        for (Py_ssize_t i = lo; i < hi; i++) { /* insertion sort: slices are short */
            int32_t p = self->endings[i];
            int32_t prev = self->pattern_words[self->pattern_at[p + 1] - 2];
            Py_ssize_t j = i;
            while (j > lo && self->ending_prev[j - 1] > prev) {
                self->endings[j] = self->endings[j - 1];
                self->ending_prev[j] = self->ending_prev[j - 1];
                j--;
            }
            self->endings[j] = p;
            self->ending_prev[j] = prev;
        }
    }
    self->patterns = patterns;
    self->labels = labels;
    return 0;
fail:
    Py_DECREF(patterns);
    Py_DECREF(labels);
    return -1;
}

/* The scan's state: the word being read and the last MAX_PHRASE words seen. */
typedef struct {
    const Matcher *m;
    char word[MAX_WORD + 1];
    Py_ssize_t len;  /* bytes of the word so far (may exceed sizeof word: then no match) */
    int foreign;     /* it holds a letter or digit beyond ASCII */
    int in_word;
    Py_ssize_t seps; /* separators since the last word ended */
    int any_gap;     /* text beyond ASCII: phrase words may be any separators apart */
    int32_t ring_id[MAX_PHRASE];
    int ring_one_sep[MAX_PHRASE]; /* the word came one separator after the one before */
    Py_ssize_t seen;              /* words so far */
    unsigned char *found;
    Py_ssize_t nfound;
} Scan;

static inline void
mark(Scan *st, int32_t p)
{
    if (!st->found[p]) {
        st->found[p] = 1;
        st->nfound++;
    }
}

static void
end_word(Scan *st)
{
    const Matcher *m = st->m;
    int32_t id = -1;
    st->in_word = 0;
    if (!st->foreign && st->len <= m->maxlen) {
        id = lookup(m, st->word, st->len, hash_bytes(st->word, st->len));
    }
    Py_ssize_t slot = st->seen % MAX_PHRASE;
    st->ring_id[slot] = id;
    st->ring_one_sep[slot] = st->seps == 1;
    st->seen++;
    st->seps = 0;
    if (id < 0) {
        return;
    }
    for (Py_ssize_t i = m->single_at[id]; i < m->single_at[id + 1]; i++) {
        mark(st, m->singles[i]);
    }
    Py_ssize_t lo = m->ending_at[id], hi = m->ending_at[id + 1];
    if (lo == hi || st->seen < 2 || !(st->any_gap || st->ring_one_sep[slot])) {
        return;
    }
    int32_t prev = st->ring_id[(st->seen - 2) % MAX_PHRASE];
    if (prev < 0) {
        return;
    }
    while (lo < hi) { /* the first phrase whose next-to-last word is prev */
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (m->ending_prev[mid] < prev) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    for (Py_ssize_t i = lo; i < m->ending_at[id + 1] && m->ending_prev[i] == prev; i++) {
        int32_t p = m->endings[i];
        if (st->found[p]) {
            continue;
        }
        const int32_t *words = m->pattern_words + m->pattern_at[p];
        Py_ssize_t len = m->pattern_at[p + 1] - m->pattern_at[p];
        if (len > st->seen) {
            continue;
        }
        int ok = 1;
        for (Py_ssize_t k = 2; k < len && ok; k++) { /* k = 1 (prev) matched above */
            /* words[len-1-k] must be the word k before this one, and the word after it
             * one separator away (in ASCII text) */
            Py_ssize_t at = (st->seen - 1 - k) % MAX_PHRASE;
            Py_ssize_t after = (st->seen - k) % MAX_PHRASE;
            ok = st->ring_id[at] == words[len - 1 - k] &&
                 (st->any_gap || st->ring_one_sep[after]);
        }
        if (ok) {
            mark(st, p);
        }
    }
}

static inline void
word_char(Scan *st, char c, int foreign)
{
    if (!st->in_word) {
        st->in_word = 1;
        st->len = 0;
        st->foreign = 0;
    }
    if (foreign) {
        st->foreign = 1;
    }
    else if (st->len < (Py_ssize_t)sizeof st->word) {
        st->word[st->len] = c;
    }
    st->len++;
}

static inline void
separator(Scan *st)
{
    if (st->in_word) {
        end_word(st);
    }
    st->seps++;
}

static void
feed_beyond_ascii(Scan *st, Py_UCS4 c)
{
    switch (c) {
    case 0x2018: case 0x2019: case 0x201C: case 0x201D: case 0xAB: case 0xBB:
        return; /* curly quotes and guillemets are dropped */
    case 0x130: /* lower case: "i" and a combining dot, which separates */
        word_char(st, 'i', 0);
        separator(st);
        return;
    case 0x212A: /* the Kelvin sign lowers to "k" */
        word_char(st, 'k', 0);
        return;
    default:
        if (Py_UNICODE_ISALNUM(c)) {
            word_char(st, 0, 1);
        }
        else {
            separator(st);
        }
    }
}

static inline void
feed(Scan *st, Py_UCS4 c)
{
    if (c < 128) {
        unsigned char cls = ascii_class[c];
        if (cls == SEP) {
            separator(st);
        }
        else if (cls != DROP) {
            word_char(st, (char)cls, 0);
        }
    }
    else {
        feed_beyond_ascii(st, c);
    }
}

PyDoc_STRVAR(Matcher_find_doc,
             "find(text, /)\n--\n\n"
             "The labels of the patterns that occur in text, in the patterns' order.");

static PyObject *
Matcher_find(Matcher *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "find() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    if (self->labels == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Matcher is not initialised");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    unsigned char stack_found[256];
    unsigned char *found = stack_found;
    if (self->npatterns > (Py_ssize_t)sizeof stack_found) {
        found = PyMem_Calloc((size_t)self->npatterns, 1);
        if (found == NULL) {
            return PyErr_NoMemory();
        }
    }
    else {
        memset(stack_found, 0, (size_t)self->npatterns);
    }
    Scan st;
    st.m = self;
    st.len = 0;
    st.foreign = 0;
    st.in_word = 0;
    st.seps = 0;
    st.seen = 0;
    st.found = found;
    st.nfound = 0;
    st.any_gap = !PyUnicode_IS_ASCII(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            feed(&st, s[i]);
        }
    }
    else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            feed(&st, s[i]);
        }
    }
    else {
        const Py_UCS4 *s = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            feed(&st, s[i]);
        }
    }
    if (st.in_word) {
        end_word(&st);
    }
    PyObject *out = PyTuple_New(st.nfound);
    if (out != NULL) {
        Py_ssize_t k = 0;
        for (Py_ssize_t p = 0; p < self->npatterns && k < st.nfound; p++) {
            if (found[p]) {
                PyObject *label = PyTuple_GET_ITEM(self->labels, p);
                Py_INCREF(label);
                PyTuple_SET_ITEM(out, k++, label);
            }
        }
    }
    if (found != stack_found) {
        PyMem_Free(found);
    }
    return out;
}

static PyObject *
Matcher_reduce(Matcher *self, PyObject *Py_UNUSED(ignored))
{
    if (self->patterns == NULL || self->labels == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Matcher is not initialised");
        return NULL;
    }
    return Py_BuildValue("O(OO)", (PyObject *)Py_TYPE(self), self->patterns, self->labels);
}

static PyMethodDef Matcher_methods[] = {
    {"find", (PyCFunction)Matcher_find, METH_O, Matcher_find_doc},
    {"__reduce__", (PyCFunction)Matcher_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Matcher_doc,
             "Matcher(patterns, labels)\n--\n\n"
             "Whole-word matcher of keywords given as their normalised words (tuples of\n"
             "lower-case ASCII bytes); find() returns the labels of those that occur.");

static PyTypeObject MatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "turnout.policies._wordscan.Matcher",
    .tp_basicsize = sizeof(Matcher),
    .tp_dealloc = (destructor)Matcher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Matcher_traverse,
    .tp_clear = (inquiry)Matcher_clear,
    .tp_doc = Matcher_doc,
    .tp_methods = Matcher_methods,
    .tp_init = (initproc)Matcher_init,
    .tp_new = PyType_GenericNew,
};

/* Count code units equal to c, in blocks of 255 with byte counters, which the compiler
 * turns into vector compares (8 KB of one-byte text in about 0.3 µs, against 3 µs for
 * str.count). */
#define DEFINE_COUNT(NAME, T)                                 \
    static Py_ssize_t NAME(const T *s, Py_ssize_t n, T c)     \
    {                                                         \
        Py_ssize_t count = 0, i = 0;                          \
        while (i < n) {                                       \
            Py_ssize_t end = n - i > 255 ? i + 255 : n;       \
            unsigned char block = 0;                          \
            for (; i < end; i++) {                            \
                block += s[i] == c;                           \
            }                                                 \
            count += block;                                   \
        }                                                     \
        return count;                                         \
    }
DEFINE_COUNT(count_ucs1, Py_UCS1)
DEFINE_COUNT(count_ucs2, Py_UCS2)
DEFINE_COUNT(count_ucs4, Py_UCS4)

PyDoc_STRVAR(count_newlines_doc,
             "count_newlines(text, /)\n--\n\n"
             "text.count('\\n'), in a loop the compiler vectorises.");

static PyObject *
count_newlines(PyObject *module, PyObject *text)
{
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "count_newlines() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), count;
    const void *data = PyUnicode_DATA(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        count = count_ucs1(data, n, '\n');
        break;
    case PyUnicode_2BYTE_KIND:
        count = count_ucs2(data, n, '\n');
        break;
    default:
        count = count_ucs4(data, n, '\n');
    }
    return PyLong_FromSsize_t(count);
}

static PyMethodDef module_methods[] = {
    {"count_newlines", count_newlines, METH_O, count_newlines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wordscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "turnout.policies._wordscan",
    .m_doc = "Compiled keyword matching and line counting for turnout's text signals.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__wordscan(void)
{
    init_classes();
    if (PyType_Ready(&MatcherType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&wordscan_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&MatcherType);
    if (PyModule_AddObject(m, "Matcher", (PyObject *)&MatcherType) < 0) {
        Py_DECREF(&MatcherType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
