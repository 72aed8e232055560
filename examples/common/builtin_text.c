/* See builtin_text.h. */
#include "builtin_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

typedef struct gen {
    gopt_rng rng;
    char *buf;
    size_t len, cap;
    int cap_next; /* capitalise the next letter */
} gen;

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* nouns: singular, plural */
static const char *const nouns[][2] = {
    {"king", "kings"},       {"queen", "queens"},     {"sailor", "sailors"}, {"merchant", "merchants"},
    {"child", "children"},   {"woman", "women"},      {"man", "men"},        {"soldier", "soldiers"},
    {"fox", "foxes"},        {"horse", "horses"},     {"bird", "birds"},     {"letter", "letters"},
    {"city", "cities"},      {"river", "rivers"},     {"garden", "gardens"}, {"ship", "ships"},
    {"story", "stories"},    {"stranger", "strangers"}, {"servant", "servants"}, {"lord", "lords"},
};
static const char *const names[] = {"Anna", "Marcus", "Helen", "Tobias", "Clara", "Edmund", "Lucy", "Oswin"};
/* transitive verbs: 3rd singular present, plural present, past */
static const char *const tverbs[][3] = {
    {"sees", "see", "saw"},           {"loves", "love", "loved"},     {"follows", "follow", "followed"},
    {"finds", "find", "found"},       {"fears", "fear", "feared"},    {"remembers", "remember", "remembered"},
    {"carries", "carry", "carried"},  {"watches", "watch", "watched"}, {"calls", "call", "called"},
    {"helps", "help", "helped"},
};
static const char *const iverbs[][3] = {
    {"sleeps", "sleep", "slept"},   {"waits", "wait", "waited"},   {"sings", "sing", "sang"},
    {"laughs", "laugh", "laughed"}, {"runs", "run", "ran"},        {"listens", "listen", "listened"},
    {"arrives", "arrive", "arrived"}, {"weeps", "weep", "wept"},
};
static const char *const sayverbs[] = {"said", "asked", "whispered", "cried", "answered"};
static const char *const adjs[] = {"old", "young", "quiet", "bright", "cold", "proud", "small", "gentle",
                                   "dark", "strange", "green", "wise"};
static const char *const preps[] = {"near", "behind", "under", "beside", "across", "beyond", "with"};
static const char *const advs[] = {"slowly", "again", "tonight", "at last", "in silence", "every morning"};
static const char *const conjs[] = {"and", "but", "so", "while", "because"};

static int put(gen *g, const char *s) {
    size_t n = strlen(s);
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap * 2 + n + 64;
        char *b = realloc(g->buf, cap);
        if (!b) return -1;
        g->buf = b;
        g->cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (g->cap_next && isalpha((unsigned char)ch)) {
            ch = (char)toupper((unsigned char)ch);
            g->cap_next = 0;
        }
        g->buf[g->len++] = ch;
    }
    return 0;
}

static int word(gen *g, const char *s) { return put(g, " ") || put(g, s); }
static int pick(gen *g, int n) { return (int)gopt_rng_below(&g->rng, (uint64_t)n); }
static int chance(gen *g, double p) { return gopt_rng_uniform(&g->rng) < p; }

static int clause(gen *g, int plural, int depth, int past);

/* A noun phrase; *plural receives its number. depth bounds the nesting. */
static int noun_phrase(gen *g, int depth, int *plural) {
    if (chance(g, 0.15)) {
        *plural = 0;
        return word(g, names[pick(g, COUNT(names))]);
    }
    int pl = chance(g, 0.35);
    *plural = pl;
    int rc = word(g, pl ? (chance(g, 0.5) ? "the" : "some") : (chance(g, 0.7) ? "the" : "a"));
    if (!rc && chance(g, 0.4)) rc = word(g, adjs[pick(g, COUNT(adjs))]);
    if (!rc) rc = word(g, nouns[pick(g, COUNT(nouns))][pl]);
    if (!rc && depth < 3 && chance(g, 0.25)) { /* prepositional phrase */
        int p2;
        rc = word(g, preps[pick(g, COUNT(preps))]) || noun_phrase(g, depth + 1, &p2);
    }
    if (!rc && depth < 2 && chance(g, 0.2)) { /* relative clause agreeing with the head noun */
        rc = word(g, chance(g, 0.5) ? "who" : "that") || clause(g, pl, depth + 1, chance(g, 0.5));
    }
    return rc;
}

/* A verb phrase whose verb agrees with a subject of number `plural` (the subject given). */
static int clause(gen *g, int plural, int depth, int past) {
    int form = past ? 2 : plural ? 1 : 0;
    int rc;
    if (chance(g, 0.6)) {
        int p2;
        rc = word(g, tverbs[pick(g, COUNT(tverbs))][form]) || noun_phrase(g, depth + 1, &p2);
    } else {
        rc = word(g, iverbs[pick(g, COUNT(iverbs))][form]);
    }
    if (!rc && chance(g, 0.2)) rc = word(g, advs[pick(g, COUNT(advs))]);
    return rc;
}

/* subject + predicate, optionally coordinated */
static int simple_sentence(gen *g, int depth) {
    int pl, past = chance(g, 0.5);
    int rc = noun_phrase(g, depth, &pl) || clause(g, pl, depth, past);
    if (!rc && depth == 0 && chance(g, 0.3)) {
        rc = put(g, ",") || word(g, conjs[pick(g, COUNT(conjs))]) || noun_phrase(g, depth + 1, &pl) ||
             clause(g, pl, depth + 1, past);
    }
    return rc;
}

static int sentence(gen *g) {
    g->cap_next = 1;
    int rc;
    if (chance(g, 0.15)) { /* quoted speech: "..." said the sailor. */
        int pl;
        rc = put(g, " \"");
        g->cap_next = 1;
        /* the opening quote is followed directly by the sentence: drop its leading space */
        if (!rc) {
            size_t mark = g->len;
            rc = simple_sentence(g, 1);
            if (!rc && g->len > mark && g->buf[mark] == ' ') {
                memmove(g->buf + mark, g->buf + mark + 1, g->len - mark - 1);
                g->len--;
            }
        }
        if (!rc) rc = put(g, chance(g, 0.3) ? "?\"" : ",\"") || word(g, sayverbs[pick(g, COUNT(sayverbs))]) ||
                      noun_phrase(g, 2, &pl) || put(g, ".");
        return rc;
    }
    rc = simple_sentence(g, 0);
    return rc || put(g, chance(g, 0.1) ? "!" : ".");
}

int builtin_text_generate(uint64_t seed, size_t n, char **out) {
    *out = NULL;
    gen g;
    memset(&g, 0, sizeof g);
    gopt_rng_seed(&g.rng, seed);
    int in_paragraph = 0;
    const size_t want = n + n / 50 + 1024; /* margin for the spaces removed below */
    while (g.len < want) {
        if (sentence(&g)) {
            free(g.buf);
            return -1;
        }
        if (++in_paragraph >= 3 + pick(&g, 5)) { /* end the paragraph */
            if (put(&g, "\n\n")) {
                free(g.buf);
                return -1;
            }
            in_paragraph = 0;
        }
    }
    /* sentences start with a space: drop it after a line break and at the start */
    size_t w = 0;
    for (size_t r = 0; r < g.len; r++) {
        if (g.buf[r] == ' ' && (w == 0 || g.buf[w - 1] == '\n')) continue;
        g.buf[w++] = g.buf[r];
    }
    (void)w; /* w >= n: at most one space per paragraph of at least three sentences went */
    *out = g.buf;
    return 0;
}
