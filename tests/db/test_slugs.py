import pytest

from db.errors import InvalidTenantSlug
from db.slugs import schema_for, validate_slug


@pytest.mark.parametrize("slug", ["acme", "a_1", "abc", "z" * 40, "team_42_x"])
def test_valid_slugs_are_accepted(slug: str) -> None:
    assert validate_slug(slug) == slug
    assert schema_for(slug) == f"tenant_{slug}"


@pytest.mark.parametrize(
    "slug",
    ["ab", "a" * 41, "1abc", "_abc", "Acme", "ac-me", "a;drop schema x", "a b c", "ąbc", "abc\n", "", "x" * 200],
)
def test_malformed_slugs_are_refused_with_the_rule(slug: str) -> None:
    with pytest.raises(InvalidTenantSlug, match="3-40 characters"):
        validate_slug(slug)


@pytest.mark.parametrize("slug", ["public", "pg_catalog", "information_schema", "pg_temp_1", "tenant", "admin"])
def test_reserved_slugs_are_refused(slug: str) -> None:
    with pytest.raises(InvalidTenantSlug, match="reserved"):
        validate_slug(slug)


def test_non_string_slug_is_refused() -> None:
    with pytest.raises(InvalidTenantSlug):
        validate_slug(None)


def test_long_slug_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidTenantSlug) as info:
        validate_slug("a" * 200)
    assert len(str(info.value)) < 200
