/*
 * list.h - the one intrusive doubly linked list (libuv's queue.h shape).
 *
 * A struct list is embedded in each element and in the owner, which holds
 * the head: an empty list points at itself, so insert and remove never
 * branch on NULL. Take the element back with CONTAINER_OF.
 */
#ifndef SSMGATE_LIST_H
#define SSMGATE_LIST_H

#include <stddef.h>

struct list {
    struct list *next, *prev;
};

static inline void list_init(struct list *h)
{
    h->next = h;
    h->prev = h;
}

static inline int list_empty(const struct list *h)
{
    return h->next == h;
}

static inline void list_insert_tail(struct list *h, struct list *e)
{
    e->next = h;
    e->prev = h->prev;
    h->prev->next = e;
    h->prev = e;
}

static inline void list_insert_head(struct list *h, struct list *e)
{
    e->next = h->next;
    e->prev = h;
    h->next->prev = e;
    h->next = e;
}

/* Unlinks e and leaves it pointing at itself, so a second remove (or
 * list_linked) is safe. */
static inline void list_remove(struct list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    list_init(e);
}

/* Whether e is in some list (after list_init or list_remove: no). */
static inline int list_linked(const struct list *e)
{
    return e->next != e;
}

/* The number of elements (a walk: for status and metrics, not hot paths). */
static inline size_t list_count(const struct list *h)
{
    size_t n = 0;
    for (const struct list *e = h->next; e != h; e = e->next)
        n++;
    return n;
}

/* Moves every element of src onto dst (its old contents dropped); src is
 * left empty. O(1): the way to take a whole queue and run it. */
static inline void list_move_all(struct list *dst, struct list *src)
{
    list_init(dst);
    if (list_empty(src))
        return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    list_init(src);
}

/* Walks h; e may be removed (not its successor) inside the body. */
#define LIST_FOREACH_SAFE(e, tmp, h)                                           \
    for ((e) = (h)->next, (tmp) = (e)->next; (e) != (h);                       \
         (e) = (tmp), (tmp) = (e)->next)

#endif
