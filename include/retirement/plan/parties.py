"""The people and organizations a plan names: the company retiring its data, its data
protection officer, and who sanitizes and who verifies it, as the certificates name them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from retirement.model.identifiers import is_valid_uscc
from retirement.plan.running import _Frozen


class Contact(_Frozen):
    name: str = Field(min_length=1)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = None
    address: str | None = None


class Person(_Frozen):
    """A named person responsible for a step, as a certificate names them."""

    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    contact: str = Field(min_length=3)  # an e-mail address, a phone number


Language = Literal["zh", "en"]  # the catalogues retirement.i18n has


class Organization(_Frozen):
    name: str = Field(min_length=1)
    uscc: str
    contact: Contact
    dpo: Person | None = None  # the data protection officer (PIPL Art. 52)
    # The languages of the dossier, its certificates and the Retirement page, side by side in
    # this order (retirement.i18n): Chinese and English unless the plan says otherwise.
    languages: tuple[Language, ...] = Field(default=("zh", "en"), min_length=1)

    @field_validator("languages")
    @classmethod
    def _languages_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({x for x in value if value.count(x) > 1})
        if twice:
            raise ValueError(f"each language once: {', '.join(twice)} is listed more than once")
        return value

    @field_validator("uscc")
    @classmethod
    def _uscc_checks(cls, value: str) -> str:
        if not is_valid_uscc(value):
            raise ValueError(
                "not a valid unified social credit code: 18 characters from "
                "0-9A-HJ-NPQRTUWXY whose last one is the GB 32100 mod-31 check character"
            )
        return value


class Sanitization(_Frozen):
    """Who sanitizes and who verifies it (NIST SP 800-88 Rev. 2 sanitization record): the
    certificates name them beside the task that deleted and the task that verified."""

    organization: str = Field(min_length=1)
    performed_by: Person
    verified_by: Person
