"""The dashboard's stylesheet, inlined into the page: one request, no file to ship beside the code.

System fonts only (nothing fetched); tabular figures so money lines up; a grid of panels that becomes one
column on a phone; light and dark from the system's preference.
"""

CSS = """
:root { --fg: #1d2330; --muted: #5d6675; --bg: #f4f5f7; --panel: #fff; --line: #e2e5ea; --accent: #0072b2;
        --ok: #009e73; --near: #e69f00; --over: #d55e00; --track: #e8ebef; --forecast: #c7ccd4; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e8ec; --muted: #9aa3b1; --bg: #15181d; --panel: #1e232a; --line: #2e343d; --accent: #56b4e9;
          --track: #2b313a; --forecast: #4a525e; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; padding: .8rem 1rem;
         border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { font-size: 1.15rem; margin: 0; }
header .summary { color: var(--muted); }
header .summary strong { color: var(--fg); }
nav.controls { display: flex; flex-wrap: wrap; gap: .4rem 1rem; padding: .6rem 1rem; }
nav.controls > div { display: flex; flex-wrap: wrap; align-items: baseline; gap: .2rem; min-width: 0; }
nav.controls span { color: var(--muted); margin-right: .25rem; }
nav.controls a { color: var(--accent); text-decoration: none; padding: .1rem .45rem; border-radius: 4px; }
nav.controls a.current { background: var(--accent); color: var(--panel); }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 30rem), 1fr)); gap: 1rem;
       padding: 0 1rem 1rem; }
section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem;
                min-width: 0; }
section.wide { grid-column: 1 / -1; }
section.panel h2 { font-size: 1rem; margin: 0 0 .6rem; }
.empty { color: var(--muted); font-style: italic; margin: .4rem 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: .9rem; }
th, td { padding: .3rem .4rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.name { overflow-wrap: anywhere; min-width: 7rem; }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .baseline { stroke: var(--muted); stroke-width: 1; }
svg .axis { fill: var(--muted); font: 11px system-ui, sans-serif; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .2rem 1rem; padding: 0; margin: .5rem 0 0; }
ul.legend li { display: flex; align-items: center; gap: .35rem; overflow-wrap: anywhere; }
ul.legend i { width: .8rem; height: .8rem; border-radius: 2px; display: inline-block; flex: none; }
.budget { margin: .2rem 0 .8rem; }
.budget .head { display: flex; flex-wrap: wrap; justify-content: space-between; gap: 0 1rem; }
.budget .head .figures { font-variant-numeric: tabular-nums; white-space: nowrap; }
.budget .window { color: var(--muted); font-size: .85rem; }
svg.budget-bar { width: 100%; height: 30px; display: block; }
svg.budget-bar .track { fill: var(--track); }
svg.budget-bar .forecast { fill: var(--forecast); }
svg.budget-bar .spent.ok { fill: var(--ok); }
svg.budget-bar .spent.near { fill: var(--near); }
svg.budget-bar .spent.over { fill: var(--over); }
svg.budget-bar .threshold { stroke: var(--fg); stroke-width: 2; }
.state-delivered { color: var(--ok); }
.state-pending { color: var(--near); }
.state-failed { color: var(--over); font-weight: 600; }
#bill .alert { color: var(--over); font-weight: 600; margin: .4rem 0 .2rem; }
#bill ul.missing { margin: 0 0 .6rem; padding-left: 1.2rem; }
#bill h3 { font-size: .9rem; margin: .8rem 0 .3rem; }
footer { color: var(--muted); font-size: .8rem; padding: 0 1rem 1rem; }
@media (max-width: 40rem) {
  main { padding: 0 .5rem .5rem; gap: .6rem; }
  section.panel { padding: .6rem; }
  th, td { padding: .25rem .3rem; }
  .hide-narrow { display: none; }
}
"""
