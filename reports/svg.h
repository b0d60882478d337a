/*
 * svg.h - a small writer of inline SVG for the HTML report: an <svg> element
 * and the shapes the charts need (rect, line, circle, path, text), each with
 * an optional class and an optional tooltip (<title>). Every string given is
 * escaped; coordinates are written with at most two decimals.
 */
#ifndef REBOUND_REPORTS_SVG_H
#define REBOUND_REPORTS_SVG_H

#include <stdio.h>

/* Opens <svg> of width x height user units, scaled to its container, with a
 * class and an accessible label (aria-label); either may be NULL. */
void rb_svg_begin(FILE *out, double width, double height, const char *cls,
                  const char *label);
void rb_svg_end(FILE *out);

/* Opens and closes a group (<g class>) . */
void rb_svg_group(FILE *out, const char *cls);
void rb_svg_group_end(FILE *out);

/* A rectangle; width and height below 0 are drawn as 0. */
void rb_svg_rect(FILE *out, double x, double y, double w, double h, const char *cls,
                 const char *title);

void rb_svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *cls,
                 const char *title);

void rb_svg_circle(FILE *out, double cx, double cy, double r, const char *cls,
                   const char *title);

/* A path with data `d` (built by the caller from numbers only). */
void rb_svg_path(FILE *out, const char *d, const char *cls, const char *title);

/* Text at (x, y); anchor "start", "middle" or "end" (NULL: start). */
void rb_svg_text(FILE *out, double x, double y, const char *anchor, const char *cls,
                 const char *text);

#endif
