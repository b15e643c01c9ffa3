/* Per-partition queues of messages waiting for subscribers (see bus_hold.h). */
#include "bus_hold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a topic that name its queue at most (ours: "pNNNN/"). */
#define S_KEY_MAX 32
/* Partitions holding messages at once, at most (beyond: bus_hold_full). */
#define S_QUEUES_MAX 1024

/* One message waiting. */
typedef struct s_held_t {
    struct s_held_t *next; /* the next message of its queue */
    zmq_msg_t frames[2];   /* topic and body */
    size_t bytes;          /* their sizes */
} s_held_t;

/* The messages of one partition that wait, oldest first. */
typedef struct {
    char key[S_KEY_MAX]; /* the topic up to and with its first '/' */
    size_t key_len;      /* bytes of key */
    s_held_t *head;      /* the oldest (sent next) */
    s_held_t *tail;      /* the newest */
} s_queue_t;

struct bus_hold_t {
    void *sock;         /* the writer side: XPUB, NODROP */
    size_t max_bytes;   /* bus_hold_full beyond this */
    s_queue_t *queues;  /* the queues that hold something (S_QUEUES_MAX) */
    size_t nqueues;     /* how many */
    size_t messages;    /* messages held */
    size_t bytes;       /* their bytes */
};

bus_hold_t *bus_hold_new(void *sock, size_t max_bytes)
{
    bus_hold_t *self = calloc(1, sizeof *self);
    if (!self || !(self->queues = calloc(S_QUEUES_MAX, sizeof *self->queues))) {
        free(self);
        return NULL;
    }
    self->sock = sock;
    self->max_bytes = max_bytes;
    return self;
}

void bus_hold_destroy(bus_hold_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bus_hold_t *self = *self_p;
    for (size_t i = 0; i < self->nqueues; i++) {
        s_held_t *h = self->queues[i].head;
        while (h) {
            s_held_t *next = h->next;
            zmq_msg_close(&h->frames[0]);
            zmq_msg_close(&h->frames[1]);
            free(h);
            h = next;
        }
    }
    free(self->queues);
    free(self);
    *self_p = NULL;
}

/* The queue's name: the topic up to and with its first '/'. */
static size_t s_key(const zmq_msg_t *topic, char key[S_KEY_MAX])
{
    const char *t = zmq_msg_data((zmq_msg_t *)topic);
    size_t len = zmq_msg_size((zmq_msg_t *)topic), n = 0;
    while (n < len && n < S_KEY_MAX && (n == 0 || t[n - 1] != '/'))
        n++;
    memcpy(key, t, n);
    return n;
}

static s_queue_t *s_find(bus_hold_t *self, const char *key, size_t len)
{
    for (size_t i = 0; i < self->nqueues; i++)
        if (self->queues[i].key_len == len && memcmp(self->queues[i].key, key, len) == 0)
            return &self->queues[i];
    return NULL;
}

/* Sends both frames without waiting; false (frames untouched) when a
 * subscriber of the topic has no room. */
static bool s_try_send(bus_hold_t *self, zmq_msg_t frames[2])
{
    if (zmq_msg_send(&frames[0], self->sock, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return false;
    /* The first frame found room in every pipe, so the second does too (a
     * pipe counts whole messages); only a signal can interrupt it. */
    while (zmq_msg_send(&frames[1], self->sock, ZMQ_DONTWAIT) < 0 && (errno == EINTR || errno == EAGAIN)) {
    }
    return true;
}

bool bus_hold_deliver(bus_hold_t *self, zmq_msg_t frames[2])
{
    char key[S_KEY_MAX];
    size_t len = s_key(&frames[0], key);
    s_queue_t *q = self->nqueues > 0 ? s_find(self, key, len) : NULL;
    if (!q && s_try_send(self, frames)) {
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        return true;
    }
    s_held_t *h = malloc(sizeof *h);
    if (!q && self->nqueues < S_QUEUES_MAX) {
        q = &self->queues[self->nqueues++];
        *q = (s_queue_t){.key_len = len};
        memcpy(q->key, key, len);
    }
    if (!h || !q) {
        /* Out of memory, or more partitions than S_QUEUES_MAX at once (the
         * caller stops reading before): wait for room, as the bus did
         * before it held anything. */
        free(h);
        while (!s_try_send(self, frames))
            zmq_poll(NULL, 0, 1);
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
        return true;
    }
    h->next = NULL;
    h->frames[0] = frames[0];
    h->frames[1] = frames[1];
    h->bytes = zmq_msg_size(&frames[0]) + zmq_msg_size(&frames[1]);
    if (q->tail)
        q->tail->next = h;
    else
        q->head = h;
    q->tail = h;
    self->messages++;
    self->bytes += h->bytes;
    return false;
}

size_t bus_hold_flush(bus_hold_t *self, size_t max)
{
    size_t sent = 0;
    for (size_t i = 0; i < self->nqueues && sent < max;) {
        s_queue_t *q = &self->queues[i];
        while (q->head && sent < max && s_try_send(self, q->head->frames)) {
            s_held_t *h = q->head;
            q->head = h->next;
            if (!q->head)
                q->tail = NULL;
            zmq_msg_close(&h->frames[0]);
            zmq_msg_close(&h->frames[1]);
            self->messages--;
            self->bytes -= h->bytes;
            free(h);
            sent++;
        }
        if (q->head) {
            i++;
            continue;
        }
        /* Empty: the last queue takes its place. */
        *q = self->queues[--self->nqueues];
    }
    return sent;
}

bool bus_hold_full(const bus_hold_t *self)
{
    return self->bytes >= self->max_bytes || self->nqueues >= S_QUEUES_MAX;
}

size_t bus_hold_messages(const bus_hold_t *self)
{
    return self->messages;
}

size_t bus_hold_bytes(const bus_hold_t *self)
{
    return self->bytes;
}

size_t bus_hold_partitions(const bus_hold_t *self)
{
    return self->nqueues;
}
