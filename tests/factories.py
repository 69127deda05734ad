"""factory_boy factories for the shared models. Domains add theirs below."""

from __future__ import annotations

from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import Council, Role, User, UserRole

PASSWORD = "correct-horse-battery"
_PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class CouncilFactory(BaseFactory):
    class Meta:
        model = Council

    slug = factory.Sequence(lambda n: f"council-{n}")
    name = factory.Sequence(lambda n: f"Council {n}")
    emergency_phone = "+448000988234"
    duty_team_phone = "+441132222222"
    cancellation_fee_pence = 1500


class UserFactory(BaseFactory):
    class Meta:
        model = User

    council = factory.SubFactory(CouncilFactory)
    email = factory.Sequence(lambda n: f"person{n}@example.org")
    name = factory.Sequence(lambda n: f"Person {n}")
    password_hash = _PASSWORD_HASH
    phone = factory.Sequence(lambda n: f"+447911{n % 1000000:06d}")
    postcode = "LS6 2AB"

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        roles = extracted or [Role.CARER]
        self.role_rows = [UserRole(role=Role(r)) for r in roles]
        if create:
            db.session.commit()


def make_user(*roles: Role, council: Council | None = None, **kwargs: Any) -> User:
    """A person with `roles` (carer by default), in `council` (a new one by default)."""
    if council is not None:
        kwargs["council"] = council
    user: User = UserFactory(roles=list(roles) or [Role.CARER], **kwargs)
    return user
