/*
 * fault.c - firing an armed fault: dispatching to the injector of its form,
 * claiming the agent's death for it (so the next attempt is told why), its
 * second act (the SIGKILL after a notice, the SIGCONT ending a freeze), and
 * the fault.inject / fault.heal events with the trigger-to-injection latency
 * measured on the supervisor's own monotonic clock.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const form_names[] = {"unknown",  "notice",     "sigkill",  "freeze",
                                         "oom-kill", "clock-jump", "partition"};

const char *rb_fault_form_name(enum rb_fault_form form)
{
    if ((int)form < 1 || (size_t)form >= sizeof(form_names) / sizeof(form_names[0]))
        return "unknown";
    return form_names[form];
}

static void blame(struct rb_sup *sup, const struct rb__fault *f, const char *kind)
{
    if (sup->blame.set)
        return; /* the first fault to act on the attempt keeps the blame */
    sup->blame.set = 1;
    sup->blame.kind = kind;
    sup->blame.form = rb_fault_form_name(f->spec.form);
    snprintf(sup->blame.trigger, sizeof(sup->blame.trigger), "%s", f->desc);
    sup->blame.limit = sup->mem.max_bytes;
    sup->blame.by_kill =
        f->spec.form == RB_FAULT_SIGKILL || f->spec.form == RB_FAULT_OOM_KILL;
}

static json_t *fault_json(const struct rb_sup *sup, const struct rb__fault *f)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    json_object_set_new(o, "form", json_string(rb_fault_form_name(f->spec.form)));
    json_object_set_new(o, "fault", json_integer(f - sup->faults));
    json_object_set_new(o, "attempt", json_integer(sup->attempt));
    json_object_set_new(o, "pgid", json_integer(sup->pgid));
    json_object_set_new(o, "trigger", json_string(f->desc));
    return o;
}

void rb__fault_fire(struct rb_sup *sup, struct rb__fault *f, int64_t trigger_ns)
{
    enum rb_fault_form form = f->spec.form;
    int sig = 0, e = 0;
    double jump_to = 0;
    struct rb_error cerr;
    int64_t inject_ns;
    json_t *o;

    f->trigger_ns = trigger_ns;
    f->attempt = sup->attempt;
    if (form == RB_FAULT_CLOCK_JUMP) {
        jump_to = rb_clock_offset(sup->clock) + f->spec.jump_s;
        if (rb_clock_set(sup->clock, jump_to, rb_clock_rate(sup->clock), &cerr) != RB_OK)
            e = cerr.cause ? cerr.cause : EIO;
    } else if (form == RB_FAULT_PARTITION) {
        if (rb_netns_partition(sup->netns, 1, &cerr) != RB_OK)
            e = cerr.cause ? cerr.cause : EIO;
    } else {
        /* Claim the death before the signal lands, so an exit seen right
         * after is already attributed. */
        if (form == RB_FAULT_OOM_KILL)
            blame(sup, f, "oom");
        else if (form != RB_FAULT_FREEZE)
            blame(sup, f, "preemption");
        sig = rb__preempt_inject(sup->pgid, form);
        if (sig < 0)
            e = errno;
    }
    inject_ns = rb__fx_now_ns();
    sup->injected++;

    if (form == RB_FAULT_NOTICE || form == RB_FAULT_FREEZE ||
        form == RB_FAULT_PARTITION) {
        int64_t ms = form == RB_FAULT_NOTICE ? f->spec.grace_ms : f->spec.duration_ms;
        f->state = RB__ACTIVE;
        f->due_ns = inject_ns + ms * 1000000;
    } else {
        f->state = RB__DONE;
    }

    o = fault_json(sup, f);
    if (o) {
        json_object_set_new(o, "trigger_t", json_integer(trigger_ns));
        json_object_set_new(o, "latency_ns", json_integer(inject_ns - trigger_ns));
        if (sig > 0)
            json_object_set_new(o, "signal", json_integer(sig));
        if (form == RB_FAULT_NOTICE)
            json_object_set_new(o, "grace_ms", json_integer(f->spec.grace_ms));
        if (form == RB_FAULT_FREEZE || form == RB_FAULT_PARTITION)
            json_object_set_new(o, "duration_ms", json_integer(f->spec.duration_ms));
        if (form == RB_FAULT_OOM_KILL) {
            json_object_set_new(o, "mechanism", json_string("trigger"));
            json_object_set_new(o, "exit_code", json_integer(137));
        }
        if (form == RB_FAULT_CLOCK_JUMP) {
            json_object_set_new(o, "jump_s", json_real(f->spec.jump_s));
            json_object_set_new(o, "offset_s", json_real(jump_to));
        }
        if (e)
            json_object_set_new(o, "error", json_string(strerror(e)));
    }
    rb__fx_emit(sup, "fault.inject", inject_ns, o);
}

void rb__fault_tick(struct rb_sup *sup, struct rb__fault *f, int64_t now)
{
    int sig;
    json_t *o;

    if (f->state == RB__PENDING && now >= f->due_ns) {
        rb__fault_fire(sup, f, f->due_ns);
        return;
    }
    if (f->state != RB__ACTIVE || now < f->due_ns)
        return;
    f->state = RB__DONE;
    if (f->spec.form == RB_FAULT_PARTITION) {
        o = fault_json(sup, f);
        if (rb_netns_partition(sup->netns, 0, NULL) != RB_OK && o)
            json_object_set_new(o, "error", json_string("cannot restore the link"));
        rb__fx_emit(sup, "fault.heal", rb__fx_now_ns(), o);
        return;
    }
    sig = rb__preempt_second(sup->pgid, f->spec.form);
    o = fault_json(sup, f);
    if (o && sig > 0)
        json_object_set_new(o, "signal", json_integer(sig));
    if (f->spec.form == RB_FAULT_NOTICE) {
        json_object_set_new(o, "phase", json_string("grace-over"));
        rb__fx_emit(sup, "fault.inject", rb__fx_now_ns(), o);
    } else {
        rb__fx_emit(sup, "fault.heal", rb__fx_now_ns(), o);
    }
}

void rb__faults_attempt_end(struct rb_sup *sup)
{
    size_t i;

    for (i = 0; i < sup->n_faults; i++) {
        struct rb__fault *f = &sup->faults[i];

        if (f->state == RB__ACTIVE)
            f->state = RB__DONE; /* its target is gone */
        else if (f->state == RB__PENDING &&
                 f->spec.trigger.when == RB_TRIGGER_STEP_DURING)
            f->state = RB__ARMED; /* the step died first: not fired yet */
    }
}
