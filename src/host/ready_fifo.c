/* SPDX-License-Identifier: MIT */
/* The "page ready" FIFO (ready_fifo.h). */
#include "host/ready_fifo.h"

void apf__fifo_push(struct apf__fifo *f, struct apf__slot *s)
{
    s->fifo_next = NULL;
    if (f->tail)
        f->tail->fifo_next = s;
    else
        f->head = s;
    f->tail = s;
    f->len++;
}

struct apf__slot *apf__fifo_pop(struct apf__fifo *f)
{
    struct apf__slot *s = f->head;
    f->head = s->fifo_next;
    if (f->head == NULL)
        f->tail = NULL;
    f->len--;
    return s;
}
