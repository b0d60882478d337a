/*
 * preempt.c - preemption of the agent's process group: a spot-style notice
 * (SIGTERM, then SIGKILL once the grace period is over), a bare SIGKILL (the
 * machine is lost), and a freeze (SIGSTOP, then SIGCONT after a while).
 * Every signal goes to the whole group, as a machine or container going away
 * takes every process on it.
 */
#include "internal.h"

#include <signal.h>

int rb__preempt_inject(pid_t pgid, enum rb_fault_form form)
{
    int sig;

    switch (form) {
    case RB_FAULT_NOTICE:
        sig = SIGTERM;
        break;
    case RB_FAULT_SIGKILL:
    case RB_FAULT_OOM_KILL:
        sig = SIGKILL;
        break;
    case RB_FAULT_FREEZE:
        sig = SIGSTOP;
        break;
    default:
        return 0;
    }
    if (pgid <= 0 || kill(-pgid, sig) != 0)
        return -1;
    return sig;
}

int rb__preempt_second(pid_t pgid, enum rb_fault_form form)
{
    int sig;

    if (form == RB_FAULT_NOTICE)
        sig = SIGKILL;
    else if (form == RB_FAULT_FREEZE)
        sig = SIGCONT;
    else
        return 0;
    if (pgid <= 0 || kill(-pgid, sig) != 0)
        return -1;
    return sig;
}
