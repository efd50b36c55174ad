/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the agent's clock on libev (see clock.h). */
#include "agent/clock.h"

#include <ev.h>
#include <stdlib.h>
#include <time.h>

#include "common/compiler.h"
#include "common/mem.h"

#define EV_CLOCK_MAGIC 0x45564c4bu /* "EVLK" */
#define EV_TIMER_MAGIC 0x45565449u /* "EVTI" */

struct ev_clock {
    struct pk_clock base; /* first: the ops get it back as self */
    unsigned magic;
    struct ev_loop *loop;
};

struct pk_clock_timer {
    unsigned magic;
    struct ev_clock *clock;
    ev_timer w;
    pk_clock_timer_fn fn;
    void *ctx;
};

static struct ev_clock *ev_clock_of(struct pk_clock *clock)
{
    struct ev_clock *c = (struct ev_clock *)clock;
    PK_ASSERT(c != NULL && c->magic == EV_CLOCK_MAGIC);
    return c;
}

static double ev_clock_monotonic(struct pk_clock *clock)
{
    return ev_now(ev_clock_of(clock)->loop);
}

static double ev_clock_wall(struct pk_clock *clock)
{
    struct timespec ts;

    (void)clock;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ev_clock_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_clock_timer *t = w->data;

    (void)loop;
    (void)revents;
    PK_ASSERT(t != NULL && t->magic == EV_TIMER_MAGIC);
    t->fn(t->ctx);
}

static struct pk_clock_timer *ev_clock_timer_new(struct pk_clock *clock, pk_clock_timer_fn fn,
                                                 void *ctx)
{
    struct pk_clock_timer *t = pk_xcalloc(1, sizeof(*t));

    t->magic = EV_TIMER_MAGIC;
    t->clock = ev_clock_of(clock);
    t->fn = fn;
    t->ctx = ctx;
    ev_timer_init(&t->w, ev_clock_timer_cb, 0.0, 0.0);
    t->w.data = t;
    return t;
}

static void ev_clock_timer_arm(struct pk_clock_timer *t, double after)
{
    ev_timer_stop(t->clock->loop, &t->w);
    ev_timer_set(&t->w, after, 0.0);
    ev_timer_start(t->clock->loop, &t->w);
}

static void ev_clock_timer_stop(struct pk_clock_timer *t)
{
    ev_timer_stop(t->clock->loop, &t->w);
}

static struct pk_clock_timer *ev_clock_timer_free(struct pk_clock_timer *t)
{
    if (t != NULL) {
        ev_timer_stop(t->clock->loop, &t->w);
        t->magic = 0;
        free(t);
    }
    return NULL;
}

static const struct pk_clock_ops ev_clock_ops = {
        .monotonic = ev_clock_monotonic,
        .wall = ev_clock_wall,
        .timer_new = ev_clock_timer_new,
        .timer_arm = ev_clock_timer_arm,
        .timer_stop = ev_clock_timer_stop,
        .timer_free = ev_clock_timer_free,
};

struct pk_clock *pk_clock_ev_new(struct ev_loop *loop)
{
    struct ev_clock *c = pk_xcalloc(1, sizeof(*c));

    c->base.ops = &ev_clock_ops;
    c->magic = EV_CLOCK_MAGIC;
    c->loop = loop;
    return &c->base;
}

struct pk_clock *pk_clock_ev_free(struct pk_clock *clock)
{
    if (clock != NULL) {
        struct ev_clock *c = ev_clock_of(clock);
        c->magic = 0;
        free(c);
    }
    return NULL;
}
