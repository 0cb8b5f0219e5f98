"""The local dashboard `spendwatch up` serves: one page of spend, budgets, top spenders and alerts.

`panels` turns SQL into data, `charts` and `page` turn data into SVG and HTML, `server` serves the page
behind a token. The split is what lets the tests check each panel's numbers against SQL of their own.
May import: the collector's read path (read-only connections, the web stack) and the rules' budget
standings, so that the page shows what the rules alert on. Never the daemon that composes it.
"""
