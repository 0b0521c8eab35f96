"""The ``selfhost init`` questionnaire, as data.

Each question fills one dotted profile key. ``when`` decides from the answers
so far whether it applies (the transfer acknowledgement only for a US AI
provider serving a non-US residency, database hosts only in split topology,
and so on). Host lists are asked as a count, then a name and an address per
host. The answers all end in the one Profile model, which validates them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from selfhost.models import validate_field
from selfhost.residency import is_us

Answers = dict[str, Any]
#: no profile list is longer; bounds what an index in --set can allocate
MAX_LIST_ITEMS = 100
Kind = Literal["text", "choice", "bool", "int", "list"]


def get(data: Answers, path: str) -> Any:
    """The value at dotted ``path`` in nested dicts/lists, or None."""
    node: Any = data
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def has(data: Answers, path: str) -> bool:
    return get(data, path) is not None


def put(data: Answers, path: str, value: Any) -> None:
    """Set dotted ``path``; a numeric part indexes a list, which grows as needed
    (with empty entries, filled in from earlier sources or questions).

    Raises ValueError when the path crosses a value that is not a container.
    """
    parts = path.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        nxt: Any = value if last else ([] if parts[depth + 1].isdigit() else {})
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= MAX_LIST_ITEMS:
                raise ValueError(f"{'.'.join(parts[:depth + 1])}: a list index must be a "
                                 f"number from 0 to {MAX_LIST_ITEMS - 1}")
            index = int(part)
            while len(node) < index:
                node.append({})
            if index == len(node):
                node.append(nxt)
            elif last or not isinstance(node[index], dict | list):
                node[index] = nxt
            node = node[index]
        elif isinstance(node, dict):
            if last or not isinstance(node.get(part), dict | list):
                node[part] = nxt
            node = node[part]
        else:
            raise ValueError(f"{'.'.join(parts[:depth])} is a single value, not a mapping")


def delete(data: Answers, path: str) -> None:
    parent_path, _, key = path.rpartition(".")
    parent = get(data, parent_path) if parent_path else data
    if isinstance(parent, dict):
        parent.pop(key, None)


@dataclass(frozen=True)
class Question:
    key: str
    prompt: str
    kind: Kind = "text"
    choices: tuple[str, ...] = ()
    #: a value, or a function of the answers so far; None means required
    default: Any = None
    when: Callable[[Answers], bool] = lambda _: True
    #: an empty answer leaves the key out of the profile
    optional: bool = False
    #: typed without echo (third-party keys)
    hidden: bool = False

    def default_for(self, answers: Answers) -> Any:
        return self.default(answers) if callable(self.default) else self.default


def _slug(answers: Answers) -> str | None:
    name = get(answers, "customer.name")
    if not isinstance(name, str):
        return None
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or None


def _is(path: str, *values: Any) -> Callable[[Answers], bool]:
    return lambda a: get(a, path) in values


def _not(path: str, *values: Any) -> Callable[[Answers], bool]:
    return lambda a: get(a, path) not in values


def _split(a: Answers) -> bool:
    return bool(get(a, "topology") == "split")


def _transfer(a: Answers) -> bool:
    residency = get(a, "customer.residency")
    return (get(a, "ai.provider") not in (None, "disabled")
            and isinstance(residency, str) and not is_us(residency))


_SEVERAL_APPS = "hosts.app"
MAX_APP_HOSTS = 20

QUESTIONS: tuple[Question, ...] = (
    Question("customer.name", "Customer name (as in the data processing agreement)"),
    Question("customer.id", "Customer id (lower-case letters, digits, hyphens)", default=_slug),
    Question("customer.contact_email", "Privacy contact e-mail"),
    Question("customer.residency", "Data residency (EU, or a country code such as DE, US, IN)",
             default="EU"),
    Question("topology", "Topology", "choice", ("all-in-one", "split"), default="all-in-one"),
    Question("hosts.ssh_user", "SSH user on the hosts", default="root"),
    Question(_SEVERAL_APPS, "Number of app hosts", "int", default=2, when=_split),
    Question("database.mode", "PostgreSQL: deployed locally or customer-managed (external)",
             "choice", ("local", "external"), default="local"),
    Question("database.dsn", "External PostgreSQL DSN without password "
             "(postgresql://user@host:5432/db?sslmode=verify-full)",
             when=_is("database.mode", "external")),
    Question("hosts.database.name", "Database host name", default="db1",
             when=lambda a: _split(a) and get(a, "database.mode") != "external"),
    Question("hosts.database.address", "Database host address",
             when=lambda a: _split(a) and get(a, "database.mode") != "external"),
    Question("cache.mode", "Redis: deployed locally or customer-managed (external)",
             "choice", ("local", "external"), default="local"),
    Question("cache.url", "External Redis URL without password (rediss://user@host:6380/0)",
             when=_is("cache.mode", "external")),
    Question("hosts.cache.name", "Cache host name", default="cache1",
             when=lambda a: _split(a) and get(a, "cache.mode") != "external"),
    Question("hosts.cache.address", "Cache host address",
             when=lambda a: _split(a) and get(a, "cache.mode") != "external"),
    Question("ai.provider", "AI provider", "choice", ("disabled", "openai", "anthropic"),
             default="disabled"),
    Question("ai.models", "Allowed AI models, comma-separated (empty: the provider's default)",
             "list", default=(), when=_not("ai.provider", None, "disabled")),
    Question("ai.international_transfer_acknowledged", "The AI provider processes data in the "
             "United States, an international transfer under Standard Contractual Clauses. "
             "Acknowledge it?", "bool", when=_transfer),
    Question("tls.mode", "TLS certificate", "choice", ("self-signed", "provided", "acme"),
             default="self-signed"),
    Question("tls.domain", "Public domain of the chat (e.g. chat.example.com)"),
    Question("tls.cert_file", "Certificate file (PEM; relative to the profile's directory)",
             when=_is("tls.mode", "provided")),
    Question("tls.key_file", "Private key file (PEM; relative to the profile's directory)",
             when=_is("tls.mode", "provided")),
    Question("tls.acme.provider", "ACME CA", "choice", ("letsencrypt", "customer"),
             default="letsencrypt", when=_is("tls.mode", "acme")),
    Question("tls.acme.directory_url", "ACME directory URL of your CA",
             when=lambda a: get(a, "tls.mode") == "acme"
             and get(a, "tls.acme.provider") == "customer"),
    Question("tls.acme.email", "ACME account e-mail (empty: none)", optional=True,
             when=_is("tls.mode", "acme")),
    Question("email.provider", "E-mail delivery", "choice",
             ("none", "smtp", "sendgrid", "postmark", "ses"), default="none"),
    Question("email.from_address", "Sender address", when=_not("email.provider", None, "none")),
    Question("email.smtp_host", "SMTP relay host", when=_is("email.provider", "smtp")),
    Question("email.smtp_username", "SMTP user name (empty: no authentication)", optional=True,
             when=_is("email.provider", "smtp")),
    Question("email.ses_region", "AWS SES region", default="eu-west-1",
             when=_is("email.provider", "ses")),
    Question("monitoring.provider", "Error monitoring", "choice",
             ("none", "self-hosted", "sentry", "datadog"), default="none"),
    Question("monitoring.sentry_region", "Sentry region", "choice", ("us", "de"), default="de",
             when=_is("monitoring.provider", "sentry")),
    Question("monitoring.datadog_site", "Datadog site", "choice",
             ("datadoghq.eu", "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com",
              "ap1.datadoghq.com"), default="datadoghq.eu",
             when=_is("monitoring.provider", "datadog")),
    Question("monitoring.self_hosted_endpoint", "Host of your monitoring collector",
             when=_is("monitoring.provider", "self-hosted")),
    Question("cdn.provider", "CDN in front of the chat", "choice",
             ("none", "cloudflare", "cloudfront"), default="none"),
    Question("backups.enabled", "Back up the database every day?", "bool", default=True),
    Question("backups.retention_days", "Days to keep backups", "int", default=14,
             when=lambda a: get(a, "backups.enabled") is not False),
)


def _host_questions(index: int, split: bool) -> tuple[Question, Question]:
    label = f"App host {index + 1}" if split else "Host"
    default = f"app{index + 1}" if split else "chat1"
    return (Question(f"hosts.app.{index}.name", f"{label} name", default=default),
            Question(f"hosts.app.{index}.address", f"{label} address (IP or DNS name)"))


def walk(answers: Answers) -> Iterator[Question]:
    """The questions that apply, in order, judged on ``answers`` as they fill in.

    The caller records each answer before taking the next question, so later
    conditions see it. ``hosts.app`` is expanded into per-host questions.
    """
    for question in QUESTIONS:
        if question.key == _SEVERAL_APPS:
            continue
        if question.key == "database.mode":
            # the app hosts come right after the topology and SSH user
            yield from _app_hosts(answers)
        if question.when(answers):
            yield question


def _app_hosts(answers: Answers) -> Iterator[Question]:
    split = _split(answers)
    existing = get(answers, "hosts.app")
    if isinstance(existing, list) and existing:
        count = len(existing)
    elif split:
        yield next(q for q in QUESTIONS if q.key == _SEVERAL_APPS)
        recorded = get(answers, "hosts.app")
        count = len(recorded) if isinstance(recorded, list) else 0
    else:
        count = 1
    for index in range(int(count)):
        yield from _host_questions(index, split)


def check(question: Question, value: Any) -> str | None:
    """The problem with one answer on its own, or None."""
    if question.key == _SEVERAL_APPS:
        if not isinstance(value, int) or not 1 <= value <= MAX_APP_HOSTS:
            return f"give a number from 1 to {MAX_APP_HOSTS}"
        return None
    if value is None and question.optional:
        return None
    return validate_field(question.key, value)


def record(answers: Answers, question: Question, value: Any) -> None:
    """Store an answer; the app host count becomes that many empty host entries."""
    if question.key == _SEVERAL_APPS:
        put(answers, question.key, [{} for _ in range(int(value))])
    elif value is not None:
        put(answers, question.key, value)


def parse_answer(question: Question, value: Any) -> Any:
    """A typed answer from what a prompt returned (text for lists and free text)."""
    if isinstance(value, str):
        value = value.strip()
        if question.kind == "list":
            return [item.strip() for item in value.split(",") if item.strip()]
        if question.optional and not value:
            return None
    if question.kind == "list" and isinstance(value, tuple):
        return list(value)
    return value
