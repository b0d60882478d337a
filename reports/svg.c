/*
 * svg.c - the inline SVG writer of the HTML report (svg.h): shapes written
 * straight to the output, strings escaped with the report's XML escaping,
 * numbers with at most two decimals so big charts stay small.
 */
#include "svg.h"

#include "internal.h"

#include <math.h>
#include <stdio.h>

/* Writes ` name="v"` with v rounded to two decimals. */
static void num_attr(FILE *out, const char *name, double v)
{
    char buf[48];

    if (!isfinite(v))
        v = 0;
    fprintf(out, " %s=\"%s\"", name, rb__fmt_num(buf, v, 2));
}

static void cls_attr(FILE *out, const char *cls)
{
    if (!cls)
        return;
    fputs(" class=\"", out);
    rb__put_xml(out, cls);
    fputc('"', out);
}

/* Closes an element: with a <title> child when there is a title. */
static void close_elem(FILE *out, const char *tag, const char *title)
{
    if (!title) {
        fputs("/>", out);
        return;
    }
    fputs("><title>", out);
    rb__put_xml(out, title);
    fprintf(out, "</title></%s>", tag);
}

void rb_svg_begin(FILE *out, double width, double height, const char *cls,
                  const char *label)
{
    char w[48], h[48];

    fprintf(out, "<svg viewBox=\"0 0 %s %s\"", rb__fmt_num(w, width, 2),
            rb__fmt_num(h, height, 2));
    num_attr(out, "width", width);
    num_attr(out, "height", height);
    cls_attr(out, cls);
    if (label) {
        fputs(" role=\"img\" aria-label=\"", out);
        rb__put_xml(out, label);
        fputc('"', out);
    }
    fputs(">\n", out);
}

void rb_svg_end(FILE *out)
{
    fputs("</svg>\n", out);
}

void rb_svg_group(FILE *out, const char *cls)
{
    fputs("<g", out);
    cls_attr(out, cls);
    fputs(">\n", out);
}

void rb_svg_group_end(FILE *out)
{
    fputs("</g>\n", out);
}

void rb_svg_rect(FILE *out, double x, double y, double w, double h, const char *cls,
                 const char *title)
{
    fputs("<rect", out);
    num_attr(out, "x", x);
    num_attr(out, "y", y);
    num_attr(out, "width", w > 0 ? w : 0);
    num_attr(out, "height", h > 0 ? h : 0);
    cls_attr(out, cls);
    close_elem(out, "rect", title);
    fputc('\n', out);
}

void rb_svg_line(FILE *out, double x1, double y1, double x2, double y2, const char *cls,
                 const char *title)
{
    fputs("<line", out);
    num_attr(out, "x1", x1);
    num_attr(out, "y1", y1);
    num_attr(out, "x2", x2);
    num_attr(out, "y2", y2);
    cls_attr(out, cls);
    close_elem(out, "line", title);
    fputc('\n', out);
}

void rb_svg_circle(FILE *out, double cx, double cy, double r, const char *cls,
                   const char *title)
{
    fputs("<circle", out);
    num_attr(out, "cx", cx);
    num_attr(out, "cy", cy);
    num_attr(out, "r", r);
    cls_attr(out, cls);
    close_elem(out, "circle", title);
    fputc('\n', out);
}

void rb_svg_path(FILE *out, const char *d, const char *cls, const char *title)
{
    fputs("<path d=\"", out);
    rb__put_xml(out, d);
    fputc('"', out);
    cls_attr(out, cls);
    close_elem(out, "path", title);
    fputc('\n', out);
}

void rb_svg_text(FILE *out, double x, double y, const char *anchor, const char *cls,
                 const char *text)
{
    fputs("<text", out);
    num_attr(out, "x", x);
    num_attr(out, "y", y);
    if (anchor) {
        fputs(" text-anchor=\"", out);
        rb__put_xml(out, anchor);
        fputc('"', out);
    }
    cls_attr(out, cls);
    fputc('>', out);
    rb__put_xml(out, text);
    fputs("</text>\n", out);
}
