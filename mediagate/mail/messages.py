"""Email messages as small templates: `<name>.txt` (first line the subject, then the plain
text body) and `<name>.html` (the same words, simply formatted), rendered with the same
context. The HTML one is autoescaped; the text one is not (it is never parsed as markup)."""

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,  # a missing value is a bug, never an empty link
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str
    html: str

    def as_email(self, sender: str) -> EmailMessage:
        """A multipart/alternative message: plain text first, HTML as the richer part."""
        email = EmailMessage()
        email["From"] = sender
        email["To"] = self.to
        email["Subject"] = self.subject
        email.set_content(self.text)
        email.add_alternative(self.html, subtype="html")
        return email


def compose(template: str, to: str, **context: Any) -> Message:
    """The message `template` addressed to `to`."""
    subject, _, text = _env.get_template(f"{template}.txt").render(**context).partition("\n")
    html = _env.get_template(f"{template}.html").render(subject=subject.strip(), **context)
    return Message(to=to, subject=subject.strip(), text=text.lstrip("\n"), html=html)
