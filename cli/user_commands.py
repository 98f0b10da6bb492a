"""`paretoboard users ...`: create accounts (the first administrator too) and list them."""

from __future__ import annotations

import sys

import typer

from cli.common import session_scope
from core.models import UserRole
from core.users import service

app = typer.Typer(
    help="Accounts: create users and administrators, list them.", no_args_is_help=True
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
