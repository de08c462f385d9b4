/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics of the guest runtime: the environment's log hook and the trace hook. A leaf:
 * runtime.c and sleep_table.c call it, it calls neither (so the runtime and the sleep table
 * do not call each other both ways).
 */
#include "guest/runtime.h"

#include "proto/strbuf.h"

void apf__glog(const struct apf_guest *g, int level, const char *what, uint32_t cpu,
               uint64_t value)
{
    if (g->cfg.env->log == 0)
        return;
    char buf[128];
    struct apf__sb b = apf__sb_make(buf, sizeof(buf));
    apf__sb_str(&b, "apf: cpu ");
    apf__sb_u64(&b, cpu);
    apf__sb_str(&b, ": ");
    apf__sb_str(&b, what);
    apf__sb_char(&b, ' ');
    apf__sb_hex(&b, value);
    g->cfg.env->log(g->cfg.env_ctx, level, buf);
}

void apf__gtrace_emit(const struct apf_guest *g, uint32_t kind, uint32_t cpu, uint32_t token,
                      int32_t arg)
{
    struct apf_trace_event ev = {0};
    ev.vcpu = cpu;
    ev.token = token;
    ev.kind = kind;
    ev.arg = arg;
    g->cfg.trace(g->cfg.trace_ctx, &ev);
}
