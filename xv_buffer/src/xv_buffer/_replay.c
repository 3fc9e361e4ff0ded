/* Trace replay loops of xv_buffer's eviction policies, in C.
 *
 * The same algorithms as the _replay methods in policies.py (the tests check that both give
 * the same misses on every trace); compiled on first use by native.py and loaded with ctypes.
 * Keys arrive numbered 0 .. nkeys-1 in order of first appearance, so every table is an array.
 * Each function returns the number of misses and stores the resident keys at the end in
 * *resident.  A negative return value means memory ran out.
 */
#include <stdint.h>
#include <stdlib.h>

/* Doubly linked lists threaded through two arrays indexed by key (a key is in at most one
 * list at a time); each call has its own arrays, so calls may run in parallel threads. */
typedef struct { int32_t head, tail; int64_t size; int32_t *prv, *nxt; } list_t;

typedef struct { int32_t *prv, *nxt; } links_t;

static int links(links_t *ln, int64_t nkeys) {
    ln->prv = malloc(sizeof(int32_t) * (size_t)(nkeys + 1));
    ln->nxt = malloc(sizeof(int32_t) * (size_t)(nkeys + 1));
    return ln->prv != NULL && ln->nxt != NULL;
}

static void unlinks(links_t *ln) { free(ln->prv); free(ln->nxt); }

static void l_init(list_t *l, links_t *ln) {
    l->head = l->tail = -1; l->size = 0; l->prv = ln->prv; l->nxt = ln->nxt;
}

static void l_push(list_t *l, int32_t k) {  /* append at the tail (newest) */
    l->prv[k] = l->tail; l->nxt[k] = -1;
    if (l->tail >= 0) l->nxt[l->tail] = k; else l->head = k;
    l->tail = k; l->size++;
}

static void l_remove(list_t *l, int32_t k) {
    if (l->prv[k] >= 0) l->nxt[l->prv[k]] = l->nxt[k]; else l->head = l->nxt[k];
    if (l->nxt[k] >= 0) l->prv[l->nxt[k]] = l->prv[k]; else l->tail = l->prv[k];
    l->size--;
}

static int32_t l_pop(list_t *l) {  /* remove the head (oldest) */
    int32_t k = l->head;
    l_remove(l, k);
    return k;
}

int64_t xv_lru(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t *resident) {
    uint8_t *in = calloc((size_t)nkeys + 1, 1);
    list_t l; int64_t misses = 0;
    links_t ln = {NULL, NULL};
    if (!in || !links(&ln, nkeys)) { free(in); unlinks(&ln); return -1; }
    l_init(&l, &ln);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        if (in[k]) { l_remove(&l, k); l_push(&l, k); continue; }
        misses++;
        if (l.size >= cap) in[l_pop(&l)] = 0;
        l_push(&l, k); in[k] = 1;
    }
    *resident = l.size;
    free(in); unlinks(&ln);
    return misses;
}

int64_t xv_fifo(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t *resident) {
    uint8_t *in = calloc((size_t)nkeys + 1, 1);
    list_t l; int64_t misses = 0;
    links_t ln = {NULL, NULL};
    if (!in || !links(&ln, nkeys)) { free(in); unlinks(&ln); return -1; }
    l_init(&l, &ln);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        if (in[k]) continue;
        misses++;
        if (l.size >= cap) in[l_pop(&l)] = 0;
        l_push(&l, k); in[k] = 1;
    }
    *resident = l.size;
    free(in); unlinks(&ln);
    return misses;
}

int64_t xv_clock(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t *resident) {
    uint8_t *state = calloc((size_t)nkeys + 1, 1);  /* 0 absent, 1 bit clear, 2 bit set */
    list_t l; int64_t misses = 0;
    links_t ln = {NULL, NULL};
    if (!state || !links(&ln, nkeys)) { free(state); unlinks(&ln); return -1; }
    l_init(&l, &ln);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        if (state[k]) { state[k] = 2; continue; }
        misses++;
        if (l.size >= cap) {
            for (;;) {
                int32_t v = l_pop(&l);
                if (state[v] == 2) { state[v] = 1; l_push(&l, v); continue; }
                state[v] = 0;
                break;
            }
        }
        l_push(&l, k); state[k] = 1;
    }
    *resident = l.size;
    free(state); unlinks(&ln);
    return misses;
}

/* maxfreq: the most accesses any key has (counts never exceed it). */
int64_t xv_lfu(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t maxfreq,
               int64_t *resident) {
    int64_t *freq = calloc((size_t)nkeys + 1, sizeof(int64_t));  /* 0: not cached */
    list_t *bucket = malloc(sizeof(list_t) * (size_t)(maxfreq + 2));
    int64_t misses = 0, low = 1, size = 0;
    links_t ln = {NULL, NULL};
    if (!freq || !bucket || !links(&ln, nkeys)) {
        free(freq); free(bucket); unlinks(&ln); return -1;
    }
    for (int64_t f = 0; f < maxfreq + 2; f++) l_init(&bucket[f], &ln);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        int64_t f = freq[k];
        if (f) {
            l_remove(&bucket[f], k);
            l_push(&bucket[f + 1], k);
            freq[k] = f + 1;
            if (f == low && bucket[f].size == 0) low = f + 1;
            continue;
        }
        misses++;
        if (size >= cap) { freq[l_pop(&bucket[low])] = 0; size--; }
        l_push(&bucket[1], k); freq[k] = 1; low = 1; size++;
    }
    *resident = size;
    free(freq); free(bucket); unlinks(&ln);
    return misses;
}

enum { NONE, T1, T2, B1, B2 };

int64_t xv_arc(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t *resident) {
    uint8_t *where = calloc((size_t)nkeys + 1, 1);
    list_t t1, t2, b1, b2; int64_t misses = 0;
    double p = 0.0;  /* the target size of T1: a real number, as in the paper */
    links_t ln = {NULL, NULL};
    if (!where || !links(&ln, nkeys)) { free(where); unlinks(&ln); return -1; }
    l_init(&t1, &ln); l_init(&t2, &ln); l_init(&b1, &ln); l_init(&b2, &ln);
#define REPLACE(in_b2)                                                                  \
    do {                                                                                \
        if ((t1.size && ((double)t1.size > p || ((double)t1.size == p && (in_b2)))) ||  \
            !t2.size) {                                                                 \
            int32_t v = l_pop(&t1); l_push(&b1, v); where[v] = B1;                      \
        } else {                                                                        \
            int32_t v = l_pop(&t2); l_push(&b2, v); where[v] = B2;                      \
        }                                                                               \
    } while (0)
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        uint8_t w = where[k];
        if (w == T1) { l_remove(&t1, k); l_push(&t2, k); where[k] = T2; continue; }
        if (w == T2) { l_remove(&t2, k); l_push(&t2, k); continue; }
        misses++;
        if (w == B1) {
            double d = (double)b2.size / (double)b1.size;
            p += d > 1.0 ? d : 1.0;
            if (p > (double)cap) p = (double)cap;
            REPLACE(0);
            l_remove(&b1, k);
        } else if (w == B2) {
            double d = (double)b1.size / (double)b2.size;
            p -= d > 1.0 ? d : 1.0;
            if (p < 0.0) p = 0.0;
            REPLACE(1);
            l_remove(&b2, k);
        } else if (t1.size + t2.size >= cap) {
            if (t1.size + b1.size >= cap) {
                if (t1.size < cap) { where[l_pop(&b1)] = NONE; REPLACE(0); }
                else where[l_pop(&t1)] = NONE;
            } else {
                if (t1.size + b1.size + t2.size + b2.size >= 2 * cap) where[l_pop(&b2)] = NONE;
                REPLACE(0);
            }
        }
        if (w == B1 || w == B2) { l_push(&t2, k); where[k] = T2; }
        else { l_push(&t1, k); where[k] = T1; }
    }
#undef REPLACE
    *resident = t1.size + t2.size;
    free(where); unlinks(&ln);
    return misses;
}

enum { SMALL = 1, MAIN = 2, GHOST = 3 };

int64_t xv_s3fifo(const int32_t *ids, int64_t n, int64_t nkeys, int64_t cap, int64_t scap,
                  int64_t gcap, int64_t *resident) {
    uint8_t *where = calloc((size_t)nkeys + 1, 1);
    int64_t *freq = calloc((size_t)nkeys + 1, sizeof(int64_t));
    list_t small, mainq, ghost; int64_t misses = 0, mcap = cap - scap; int evicted = 0;
    links_t ln = {NULL, NULL};
    if (!where || !freq || !links(&ln, nkeys)) { free(where); free(freq); unlinks(&ln); return -1; }
    l_init(&small, &ln); l_init(&mainq, &ln); l_init(&ghost, &ln);
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        uint8_t w = where[k];
        if (w == SMALL || w == MAIN) { freq[k]++; continue; }
        int from_ghost = w == GHOST;
        if (from_ghost) { l_remove(&ghost, k); where[k] = NONE; }
        misses++;
        while (small.size + mainq.size >= cap) {
            evicted = 1;
            if (mainq.size > mcap || small.size == 0) {
                while (mainq.size) {
                    int32_t v = l_pop(&mainq);
                    if (freq[v] < 1) { where[v] = NONE; break; }
                    freq[v] = (freq[v] < 3 ? freq[v] : 3) - 1;
                    l_push(&mainq, v);
                }
            } else {
                while (small.size) {
                    int32_t v = l_pop(&small);
                    if (freq[v] >= 2) { freq[v] = 0; l_push(&mainq, v); where[v] = MAIN; continue; }
                    where[v] = NONE;
                    if (gcap > 0) {
                        if (ghost.size >= gcap) where[l_pop(&ghost)] = NONE;
                        l_push(&ghost, v); where[v] = GHOST;
                    }
                    break;
                }
            }
        }
        freq[k] = 0;
        if (from_ghost || (!evicted && small.size >= scap)) { l_push(&mainq, k); where[k] = MAIN; }
        else { l_push(&small, k); where[k] = SMALL; }
    }
    *resident = small.size + mainq.size;
    free(where); free(freq); unlinks(&ln);
    return misses;
}

/* Belady: nextuse[i] is the position of the next access to ids[i], or n + i when there is
 * none, so that ids[j] (j < n) or ids[j - n] is the key of any heap entry j. */
int64_t xv_belady(const int32_t *ids, const int64_t *nextuse, int64_t n, int64_t nkeys,
                  int64_t cap, int64_t *resident) {
    int64_t *cur = malloc(sizeof(int64_t) * (size_t)(nkeys + 1));
    int64_t *heap = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t hn = 0, misses = 0, size = 0;
    if (!cur || !heap) { free(cur); free(heap); return -1; }
    for (int64_t k = 0; k <= nkeys; k++) cur[k] = -1;
    for (int64_t i = 0; i < n; i++) {
        int32_t k = ids[i];
        if (cur[k] < 0) {
            misses++;
            if (size >= cap) {
                for (;;) {  /* pop the largest next use; skip stale entries */
                    int64_t top = heap[0], last = heap[--hn], at = 0;
                    for (;;) {
                        int64_t c = 2 * at + 1;
                        if (c >= hn) break;
                        if (c + 1 < hn && heap[c + 1] > heap[c]) c++;
                        if (heap[c] <= last) break;
                        heap[at] = heap[c]; at = c;
                    }
                    if (hn) heap[at] = last;
                    int32_t v = ids[top < n ? top : top - n];
                    if (cur[v] == top) { cur[v] = -1; break; }
                }
            } else size++;
        }
        int64_t up = nextuse[i], at = hn++;
        cur[k] = up;
        while (at > 0 && heap[(at - 1) / 2] < up) { heap[at] = heap[(at - 1) / 2]; at = (at - 1) / 2; }
        heap[at] = up;
    }
    *resident = size;
    free(cur); free(heap);
    return misses;
}
