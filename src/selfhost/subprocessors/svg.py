"""The data-flow picture: the customer's hosts and an arrow to each third party.

Drawn from the document, which is drawn from the Plan, so the picture shows
exactly the third parties the list names. With none, it says so plainly.
"""

from __future__ import annotations

from html import escape

from selfhost.i18n import DEFAULT, N_, Gettext, Lang, gettext_for
from selfhost.subprocessors.document import Store, Subprocessor, SubprocessorList

WIDTH = 800
_OUTER_X, _OUTER_W = 20, 300
_PARTY_X, _PARTY_W, _PARTY_H, _PARTY_GAP = 470, 310, 66, 14
_HOST_LINE = 20

#: the components a host box shows, in this order (common and tls are on every host)
_COMPONENT_NAMES = {
    "nginx": N_("nginx (TLS, web)"),
    "app": N_("application"),
    "egress": N_("egress proxy (allowlist)"),
    "postgresql": N_("PostgreSQL (database)"),
    "backup": N_("encrypted backups (local)"),
    "redis": N_("Redis (cache)"),
}

#: short labels for what flows to each kind of third party
_FLOW_LABELS = {
    "ai": N_("conversations, knowledge base chunks"),
    "email": N_("e-mail addresses, e-mail content"),
    "monitoring": N_("error reports, performance data, IPs"),
    "cdn": N_("visitor traffic: IPs, HTTP requests"),
    "certificate-authority": N_("domain name, ACME account e-mail"),
}


def _text(x: int, y: int, content: str, *, cls: str = "", anchor: str = "start") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}"{attr}>{escape(content)}</text>'


def _hosts(doc: SubprocessorList, top: int, _: Gettext) -> tuple[list[str], int]:
    """The hosts inside the outer box; returns the elements and the bottom y."""
    out: list[str] = []
    y = top
    for host in doc.deployment.hosts:
        shown = [_(name) for c, name in _COMPONENT_NAMES.items() if c in host.components]
        height = 34 + _HOST_LINE * len(shown)
        out.append(f'<rect x="{_OUTER_X + 16}" y="{y}" width="{_OUTER_W - 32}" '
                   f'height="{height}" rx="6" class="host"/>')
        out.append(_text(_OUTER_X + 28, y + 20, _("host {name}").format(name=host.name),
                         cls="hostname"))
        for i, name in enumerate(shown):
            out.append(_text(_OUTER_X + 36, y + 42 + i * _HOST_LINE, name, cls="component"))
        y += height + 10
    for store in (doc.deployment.database, doc.deployment.cache):
        y = _external(store, y, out)
    return out, y


def _external(store: Store, y: int, out: list[str]) -> int:
    if store.mode != "external":
        return y
    product, _sep, host = store.description.partition(" (")
    out.append(f'<rect x="{_OUTER_X + 16}" y="{y}" width="{_OUTER_W - 32}" height="46" '
               'rx="6" class="external"/>')
    out.append(_text(_OUTER_X + 28, y + 19, product, cls="component"))
    out.append(_text(_OUTER_X + 28, y + 37, host.rstrip(")")[:40], cls="detail"))
    return y + 56


def _party(sub: Subprocessor, y: int, anchor_x: int, anchor_y: int,
           _: Gettext) -> list[str]:
    location = sub.facts.data_location
    where = _("location to be confirmed") if location == "unknown" else location
    flag = _(" · international transfer") if sub.transfer.status == "international" else ""
    mid = y + _PARTY_H // 2
    cls = "party intl" if sub.transfer.status != "within-residency" else "party"
    return [
        f'<path d="M{anchor_x},{anchor_y} C{anchor_x + 70},{anchor_y} '
        f'{_PARTY_X - 70},{mid} {_PARTY_X - 4},{mid}" class="flow" '
        'marker-end="url(#arrow)"/>',
        f'<rect x="{_PARTY_X}" y="{y}" width="{_PARTY_W}" height="{_PARTY_H}" rx="6" '
        f'class="{cls}"/>',
        _text(_PARTY_X + 12, y + 20, sub.facts.name, cls="partyname"),
        _text(_PARTY_X + 12, y + 38, f"{where}{flag}"[:52], cls="detail"),
        _text(_PARTY_X + 12, y + 56, _(_FLOW_LABELS[sub.category]), cls="data"),
    ]


_STYLE = (
    "text{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;fill:#1f2933}"
    ".title{font-size:15px;font-weight:600}"
    ".outer{fill:#eef6ff;stroke:#2f6fb0;stroke-width:1.5}"
    ".host{fill:#fff;stroke:#7aa7d6}"
    ".external{fill:#fff;stroke:#7aa7d6;stroke-dasharray:5 3}"
    ".hostname{font-size:13px;font-weight:600}"
    ".component{font-size:12px}"
    ".party{fill:#fff;stroke:#6b7785}"
    ".intl{stroke:#b7791f;stroke-width:1.5}"
    ".partyname{font-size:13px;font-weight:600}"
    ".detail{font-size:11px;fill:#52606d}"
    ".data{font-size:11px;fill:#2f6fb0}"
    ".flow{fill:none;stroke:#2f6fb0;stroke-width:1.5}"
    ".none{fill:#effaf3;stroke:#2f855a;stroke-width:1.5}"
    ".ok{font-size:13px;fill:#22543d;font-weight:600}"
)


def data_flow_svg(doc: SubprocessorList, lang: Lang = DEFAULT) -> str:
    """A standalone ``<svg>`` element (no external references)."""
    _ = gettext_for(lang)
    top = 64
    host_parts, hosts_bottom = _hosts(doc, top + 40, _)
    outer_h = hosts_bottom - top + 6
    subs = doc.subprocessors
    parties_h = len(subs) * (_PARTY_H + _PARTY_GAP) - _PARTY_GAP if subs else 90
    height = top + max(outer_h, parties_h) + 24
    anchor_x, anchor_y = _OUTER_X + _OUTER_W, top + outer_h // 2
    title = escape(_("Where personal data goes from this deployment"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-labelledby="dataflow-title">',
        f'<title id="dataflow-title">{title}</title>',
        f"<style>{_STYLE}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#2f6fb0"/></marker></defs>',
        _text(_OUTER_X, 30, _("Where personal data goes"), cls="title"),
        f'<rect x="{_OUTER_X}" y="{top}" width="{_OUTER_W}" height="{outer_h}" rx="10" '
        'class="outer"/>',
        _text(_OUTER_X + 14, top + 24, _("Your infrastructure (residency {residency})")
              .format(residency=doc.customer.residency), cls="hostname"),
        *host_parts,
    ]
    if not subs:
        mid = top + 10
        parts += [
            f'<rect x="{_PARTY_X}" y="{mid}" width="{_PARTY_W}" height="70" rx="10" '
            'class="none"/>',
            _text(_PARTY_X + _PARTY_W // 2, mid + 30, _("No third party"), cls="ok",
                  anchor="middle"),
            _text(_PARTY_X + _PARTY_W // 2, mid + 52, _("No personal data leaves your hosts"),
                  cls="detail", anchor="middle"),
        ]
    for i, sub in enumerate(subs):
        parts += _party(sub, top + i * (_PARTY_H + _PARTY_GAP), anchor_x, anchor_y, _)
    parts.append("</svg>")
    return "\n".join(parts)
