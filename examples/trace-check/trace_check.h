/* SPDX-License-Identifier: MIT */
/* apf-trace-check's parts: KVM trace input (kvm_input.c) and the SVG timeline (svg.c). */
#ifndef APF_TRACE_CHECK_H
#define APF_TRACE_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "apf/trace.h"

/** One protocol event and the input line it came from. */
struct line {
    struct apf_trace_event ev;
    unsigned long no;
};

/** Reads all of @p in into a malloc'ed buffer with one spare byte; 0 or -1. */
int tc_slurp(FILE *in, char **text, size_t *len);

/** The format of a whole input (apf_trace_detect_format() on its first telling lines):
 *  an APF_TRACE_FORMAT_*; APF_TRACE_FORMAT_APF when no line tells. */
uint32_t tc_detect(const char *buf, size_t len);

/** Checks a Linux KVM trace (tracefs or `trace-cmd report` text) in @p buf: prints the
 *  verdict like the libapf-format path and returns the same exit status. @p window < 0: as
 *  the trace allows. @p svg: write the timeline there (NULL: none). */
int tc_kvm_check(char *buf, size_t len, uint32_t format, unsigned long max_out, long window,
                 const char *svg);

/** Writes the per-vCPU timeline of @p n events; @p fail_at < n marks the first violation
 *  (@p error its text). Returns 0, or -1 (message printed) if the file cannot be written. */
int tc_svg_write(const char *path, const struct line *lines, size_t n, size_t fail_at,
                 const char *error, const char *title);

/** Draws the libapf-format trace in @p trace_path as "<trace_path>.svg", the first
 *  violation (by the checker, windows as the trace says) marked. Returns 0; 1 if
 *  @p trace_path does not exist (nothing to draw); -1 (message printed) on an error. */
int tc_svg_from_file(const char *trace_path);

#endif
