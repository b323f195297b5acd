"""The ingestion report as one self-contained HTML page, rendered from the JSON report (nothing recomputed).

Every value from the data (column names, cell values, paths) goes through Jinja's autoescaping: the
report shows untrusted records, and a cell holding ``<script>`` must stay text.
"""

from __future__ import annotations

import json
from typing import Any

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelshield ingest — {{ r.source.path }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.num{text-align:right}.bad{color:#a00;font-weight:600}code{font-size:12px}
</style></head><body>
<h1>Ingestion report</h1>
<p><b>{{ r.accepted }}</b> of {{ r.records }} records accepted, <b class="{{ 'bad' if r.quarantined else '' }}">
{{ r.quarantined }}</b> quarantined{% if r.drift.drifted %}; <span class="bad">distribution drift in
{{ r.drift.drifted | join(', ') }}</span>{% endif %}. Run <code>{{ r.run_id }}</code>, {{ r.event_time }}.</p>
<h2>Source</h2>
<table>
<tr><th>input</th><td><code>{{ r.source.path }}</code></td></tr>
<tr><th>digest</th><td><code>{{ r.source.digest }}</code> ({{ r.source.size }} bytes)</td></tr>
<tr><th>signature</th><td>{% if r.source.signature %}verified: <code>{{ r.source.signature }}</code>
 ({{ r.source.signer }}){% else %}none{% endif %}</td></tr>
<tr><th>provenance lock</th><td>{{ r.source.lock_entries | join(', ') or 'no entry' }}</td></tr>
<tr><th>reference</th><td><code>{{ r.reference.path }}</code>, {{ r.reference.records }} records,
 <code>{{ r.reference.digest }}</code></td></tr>
</table>
<h2>Why records were quarantined</h2>
{% if r.reasons %}<table><tr><th>check</th><th class="num">records</th></tr>
{% for k, n in r.reasons.items() %}<tr><td>{{ k }}</td><td class="num">{{ n }}</td></tr>{% endfor %}</table>
{% else %}<p>No record was quarantined.</p>{% endif %}
<h2>Detectors (fitted on the reference)</h2>
<table><tr><th>detector</th><th class="num">threshold</th><th class="num">records flagged</th></tr>
{% for d in r.detectors %}<tr><td>{{ d.name }}</td><td class="num">{{ '%.4g' % d.threshold }}</td>
<td class="num">{{ r.quarantined_by_check.get(d.name, 0) }}</td></tr>{% endfor %}</table>
<h2>Distribution against the reference</h2>
<p>Flagged when p &lt; {{ r.drift.alpha }} and the effect (KS D, or Cramér's V for χ²) is at least
{{ r.drift.min_effect }}; numeric features tested on a sample of up to {{ r.drift.sample_size }} of all the records read
(quarantined ones included: drift describes the source, not what the screens let through).</p>
<table><tr><th>feature</th><th>test</th><th class="num">statistic</th><th class="num">p</th><th class="num">effect</th><th>drift</th></tr>
{% for d in r.drift.features %}<tr><td>{{ d.column }}</td><td>{{ d.test }}</td><td class="num">{{ '%.4g' % d.statistic }}</td>
<td class="num">{{ '%.3g' % d.p_value }}</td><td class="num">{{ '%.3f' % d.effect }}</td>
<td class="{{ 'bad' if d.drifted else '' }}">{{ 'yes' if d.drifted else 'no' }}</td></tr>{% endfor %}</table>
<h2>Quarantined records (first {{ r.examples | length }})</h2>
{% if r.examples %}<table><tr><th class="num">row</th><th>reasons</th><th>record</th></tr>
{% for e in r.examples %}<tr><td class="num">{{ e.row }}</td><td>{% for x in e.reasons %}{{ x.check }}{% if x.column %}
 {{ x.column }}: {{ x.rule }} ({{ x.value }}){% else %} score {{ x.score }} &gt; {{ x.threshold }}{% endif %}<br>{% endfor %}</td>
<td><code>{{ dumps(e.record)[:300] }}</code></td></tr>{% endfor %}</table>
<p>All of them, with every reason: <code>{{ r.outputs.quarantine.path }}</code>.</p>{% endif %}
<h2>Outputs</h2>
<table>{% for k, o in r.outputs.items() %}<tr><th>{{ k }}</th><td><code>{{ o.path }}</code></td><td><code>{{ o.digest }}</code></td></tr>{% endfor %}</table>
</body></html>
"""


def render_html(report: dict[str, Any]) -> str:
    """The report page; the JSON report is the only input."""
    from jinja2 import Environment

    env = Environment(autoescape=True, keep_trailing_newline=True)
    return env.from_string(_TEMPLATE).render(r=report, dumps=lambda v: json.dumps(v, ensure_ascii=False))
