"""`paretoboard users ...`: create accounts (the first administrator too) and list them."""

from __future__ import annotations

import sys

import typer
from sqlalchemy import select

from cli.common import session_scope, settings
from core.models import User, UserRole
from core.users import devices, service

app = typer.Typer(
    help="Accounts: create users and administrators, list them, make password-reset links.",
    no_args_is_help=True,
)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        typer.echo("error: no terminal to ask for the password; use --password-stdin", err=True)
        raise typer.Exit(code=1)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("create")
def create(
    email: str = typer.Option(..., "--email", help="the login email"),
    name: str = typer.Option(..., "--name", help="the display name"),
    admin: bool = typer.Option(False, "--admin", help="make an administrator"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"
    ),
) -> None:
    """Create an account; the password is prompted for (or read from stdin), never an argument."""
    password = _read_password(password_stdin)
    role = UserRole.ADMIN if admin else UserRole.USER
    with session_scope() as session:
        user = service.create_user(
            session, email=email, display_name=name, password=password, role=role
        )
        line = f"created {user.role.value} {user.email} (id {user.id})"
    typer.echo(line)


@app.command("list")
def list_() -> None:
    """List accounts."""
    with session_scope() as session:
        accounts = service.list_users(session)
        if not accounts:
            typer.echo("no accounts yet (paretoboard users create --email E --name N --admin)")
        for u in accounts:
            active = "" if u.is_active else "  (inactive)"
            typer.echo(f"{u.id:>5} {u.role.value:<5} {u.email:<40} {u.display_name}{active}")


@app.command("reset-link")
def reset_link(
    email: str = typer.Option(..., "--email", help="the account's login email"),
) -> None:
    """Print a password-reset link for an account (valid 24 hours, once).

    Hand it to the account's owner over a channel you trust: whoever opens it sets the password,
    ends every session of the account and clears its failed logins (the way back in for an
    owner whose account is being guessed at).
    """
    cfg = settings()
    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == service.normalise_email(email)))
        if user is None or not user.is_active:
            typer.echo(f"error: no active account with the email {email!r}", err=True)
            raise typer.Exit(code=1)
        token = devices.reset_token(cfg.secret_key.get_secret_value(), user)
    typer.echo(f"{cfg.base_url.rstrip('/')}/reset-password?token={token}")
