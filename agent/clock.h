/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the time the agent's state machine sees — a monotonic clock for delays, the wall clock
 * for certificate validity, and one-shot timers — behind one small interface, so that the state
 * machine runs unchanged on libev (pk_clock_ev_new) and on a test's hand-driven clock.
 *
 * The two clocks are independent on purpose: the wall clock may jump (NTP, a suspended VM) and
 * the agent must notice, while a retry delay must not stretch or shrink with it. A timer counts
 * monotonic time. Implementations embed struct pk_clock first and are passed to their ops as
 * self (picotls' callback style). Everything runs on the loop's thread. */
#ifndef PK_AGENT_CLOCK_H
#define PK_AGENT_CLOCK_H

struct ev_loop;
struct pk_clock;
struct pk_clock_timer;

/* A timer fired: ctx is the one given to timer_new. */
typedef void (*pk_clock_timer_fn)(void *ctx);

struct pk_clock_ops {
    /* Seconds on a clock that never jumps (libev: the loop's time). */
    double (*monotonic)(struct pk_clock *clock);
    /* Seconds since the epoch, fractional (CLOCK_REALTIME). */
    double (*wall)(struct pk_clock *clock);
    /* A disarmed timer calling fn(ctx). Never NULL (allocation failure aborts). */
    struct pk_clock_timer *(*timer_new)(struct pk_clock *clock, pk_clock_timer_fn fn, void *ctx);
    /* Fire once, after seconds of monotonic time (from now); re-arming replaces the deadline. */
    void (*timer_arm)(struct pk_clock_timer *timer, double after);
    /* Disarm; a disarmed timer does nothing. */
    void (*timer_stop)(struct pk_clock_timer *timer);
    /* Disarm and release. NULL is fine. Returns NULL. */
    struct pk_clock_timer *(*timer_free)(struct pk_clock_timer *timer);
};

struct pk_clock {
    const struct pk_clock_ops *ops;
};

static inline double pk_clock_monotonic(struct pk_clock *clock)
{
    return clock->ops->monotonic(clock);
}

static inline double pk_clock_wall(struct pk_clock *clock)
{
    return clock->ops->wall(clock);
}

/* The real clock: libev's loop time and timers on loop (borrowed), CLOCK_REALTIME. */
struct pk_clock *pk_clock_ev_new(struct ev_loop *loop);
struct pk_clock *pk_clock_ev_free(struct pk_clock *clock);

#endif
