"""`/api/v1/tokens`: the caller's API tokens (`Authorization: Bearer pb_...`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from core.users import service as users
from web.api.schemas.users import TokenCreate, TokenCreated, TokenRead
from web.auth import CurrentUser, ForbiddenError, OptionalUser, UnauthenticatedError, WriterUser
from web.deps import SessionDep
from web.errors import error_responses
from web.login import CsrfChecked, LoginLimiterDep, check_password

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


@router.post(
    "",
    status_code=201,
    responses=error_responses(400, 401, 403, 422, 429),
    summary="Create an API token",
)
def create_token(
    body: TokenCreate,
    request: Request,
    session: SessionDep,
    limiter: LoginLimiterDep,
    caller: OptionalUser,
    _csrf: CsrfChecked,
) -> TokenCreated:
    """A new API token, shown only in this response (only its hash is stored).

    Authenticate with `email` and `password` (rate-limited like logging in), or without them
    from a logged-in browser session (with its CSRF token). An API token cannot create tokens,
    so a leaked token cannot outlive its revocation.
    """
    if body.email is not None and body.password is not None:
        user = check_password(session, limiter, request, email=body.email, password=body.password)
    elif caller is None:
        raise UnauthenticatedError("Send email and password, or log in first")
    elif request.state.auth != "cookie":
        raise ForbiddenError("An API token cannot create API tokens; send email and password")
    else:
        user = caller
    row, plain = users.create_token(session, user=user, name=body.name)
    return TokenCreated(
        token=plain, id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at
    )


@router.get("", responses=error_responses(401), summary="List your API tokens")
def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenRead]:
    """The caller's unrevoked tokens (never the tokens themselves)."""
    return [TokenRead.model_validate(t) for t in users.list_tokens(session, user=user)]


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
    summary="Revoke an API token",
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], user: WriterUser, session: SessionDep
) -> None:
    """Revoke one of the caller's tokens at once (404 for anyone else's)."""
    users.revoke_token(session, user=user, token_id=token_id)
