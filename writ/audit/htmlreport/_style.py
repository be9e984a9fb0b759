"""The report's stylesheet, inlined in the page (no external request, ever)."""

CSS = """
:root { color-scheme: light; }
body { font: 10.5pt/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1a1a1a;
       max-width: 60rem; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #333; padding-bottom: 0.15rem;
     margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.3rem; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 9pt; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.4rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
#sets td { overflow-wrap: anywhere; }  /* ten columns of log values, times among them */
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 8.5pt;
              overflow-wrap: anywhere; }
.verdict { border-left: 6px solid; padding: 0.4rem 0.8rem; margin: 0.6rem 0;
           background: #fafafa; }
.verdict.ok { border-color: #2ca02c; }
.verdict.fail { border-color: #d62728; background: #fff3f3; }
.verdict .state { font-weight: bold; font-size: 1.05rem; }
.ok .state { color: #1e7a1e; }
.fail .state { color: #b31b1b; }
ul.lines { margin: 0.3rem 0; padding-left: 1.2rem; }
.finding { color: #b31b1b; font-weight: bold; }
.none { color: #1e7a1e; }
.muted { color: #666; }
figure { margin: 0.4rem 0 0.8rem; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 8.5pt; color: #555; }
p.keys { font-size: 8.5pt; }
.key { white-space: nowrap; margin-right: 0.8rem; }
.sw { display: inline-block; width: 1.6em; margin-right: 0.3em; vertical-align: middle; }
section.order { break-inside: avoid-page; }
@media print {
  body { margin: 0; max-width: none; font-size: 9.5pt; }
  h2 { break-after: avoid-page; }
  figure, table, .verdict { break-inside: avoid-page; }
}
"""
