"""Scenarios: the accounts, root users and principals a sandbox starts with.

Each builder fills a fresh :class:`World` and moto's backends. Account ids are fixed where the
scenario owns them (standalone 123456789012, management 111111111111); member ids come from moto.
Fleet accounts build their root users on first use, so ``fleet-5000`` starts quickly.

``fleet-N`` takes suffixes (``FLEET_NAME``): ``-features-off`` (the organization never turned
centralised root access on) or ``-credentials-only`` (RootCredentialsManagement on, RootSessions
off), then ``-throttled`` (fault rules that throttle every 4th AssumeRoot and every 3rd
ListMFADevices, ``FLEET_THROTTLE_EVERY``; a reset starts the count again; ``DELETE
/_sandbox/faults`` removes them). The plain ``fleet-N`` is neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any

from ._state import (
    Account,
    FaultRule,
    MfaDevice,
    Principal,
    RootAccessKey,
    RootUser,
    World,
    fido_serial,
    new_key_id,
    new_totp_seed,
)

STANDALONE_ID = "123456789012"
MANAGEMENT_ID = "111111111111"
MAX_FLEET = 5000

SCENARIOS: dict[str, str] = {
    "standalone": "standalone account; root has one virtual MFA device and a password",
    "member": "organization member with centralised root access; root has a FIDO key, a virtual "
    "device and a password",
    "member-no-password": "organization member with centralised root access; root has a virtual "
    "device and no password",
    "no-mfa": "standalone account; root has a password and no MFA device",
    "root-access-keys": "standalone account; root has a long-term access key (principal 'root'), "
    "an X.509 signing certificate and a virtual device",
    "management": "the organization's management account itself is the target; root has a "
    "virtual device",
    "fleet-N": "organization with N member accounts (N <= 5000) of mixed root state (MFA "
    "kinds, passwords, long-term root keys and certificates, old devices, suspended accounts); "
    "the target is the first member",
    "fleet-N-throttled": "fleet-N, and every 4th sts:AssumeRoot and every 3rd iam:ListMFADevices "
    "is throttled (Throttling, HTTP 400): a client with retries absorbs it",
    "fleet-N-features-off": "fleet-N whose organization has centralised root access off (no "
    "RootCredentialsManagement, no RootSessions): AssumeRoot is refused",
    "fleet-N-credentials-only": "fleet-N whose organization has only RootCredentialsManagement "
    "on (RootSessions off): AssumeRoot is refused; -features-off and -credentials-only combine "
    "with -throttled (fleet-N-credentials-only-throttled)",
}

#: fleet-N's suffixes: the organization's root-access features, then throttling
FLEET_NAME = re.compile(r"fleet-(\d+)(-features-off|-credentials-only)?(-throttled)?")
FLEET_FEATURES = {
    "": {"RootCredentialsManagement", "RootSessions"},
    "-features-off": set(),
    "-credentials-only": {"RootCredentialsManagement"},
}
#: fleet-N-throttled: operation -> k, every k-th call of it (all callers together) is throttled
FLEET_THROTTLE_EVERY = {"sts:AssumeRoot": 4, "iam:ListMFADevices": 3}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def validate(name: str) -> str:
    if name in SCENARIOS and not name.startswith("fleet-N"):
        return name
    match = FLEET_NAME.fullmatch(name)
    if match and 1 <= int(match.group(1)) <= MAX_FLEET:
        return name
    raise ValueError(
        f"unknown scenario {name!r}; choose one of: "
        + ", ".join(n for n in SCENARIOS if not n.startswith("fleet-N"))
        + f", fleet-N (1 <= N <= {MAX_FLEET}) with the suffixes -features-off or "
        "-credentials-only, then -throttled (runbook sandbox --list)"
    )


def _moto_iam(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def add_iam_principal(
    world: World, account_id: str, name: str, policies: list[dict[str, Any]] | None = None
) -> Principal:
    """An IAM user with an access key, in moto (so IAM lists it) and in the sandbox's table."""
    backend = _moto_iam(account_id)
    user_name = f"runbook-{name}"
    user = backend.users.get(user_name) or backend.create_user(
        region_name="us-east-1", user_name=user_name, path="/", tags=[]
    )
    key = backend.create_access_key(user_name=user_name)
    principal = Principal(
        name=name,
        kind="iam-user",
        account_id=account_id,
        arn=user.arn,
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
        user_name=user_name,
        user_id=user.id,
        policies=policies,
    )
    with world.lock:
        world.principals[principal.access_key_id] = principal
        world.named[name] = principal
    return principal


def _virtual(account_id: str, name: str, when: dt.datetime) -> MfaDevice:
    return MfaDevice(
        f"arn:aws:iam::{account_id}:mfa/{name}", "virtual", name, when, seed=new_totp_seed()
    )


def _fido(account_id: str, name: str, when: dt.datetime) -> MfaDevice:
    return MfaDevice(fido_serial(account_id, name), "fido", name, when)


def _hardware(account_id: str, when: dt.datetime) -> MfaDevice:
    digits = int(hashlib.sha256(account_id.encode()).hexdigest(), 16) % 10**8
    return MfaDevice(f"GAHT{digits:08d}", "hardware", "hardware-token", when, seed=new_totp_seed())


def _account(
    world: World,
    account_id: str,
    kind: str,
    devices: list[MfaDevice],
    has_password: bool = True,
    enabled_days_ago: int = 30,
) -> Account:
    created = (world.clock.now() - dt.timedelta(days=max(400, enabled_days_ago + 1))).replace(
        microsecond=0
    )
    enabled = (world.clock.now() - dt.timedelta(days=enabled_days_ago)).replace(microsecond=0)
    devices = [MfaDevice(d.serial, d.kind, d.name, enabled, d.seed) for d in devices]
    root = RootUser(
        account_id=account_id,
        email=f"root+{account_id}@example.com",
        created=created,
        has_password=has_password,
        password_last_used=(enabled + dt.timedelta(days=5)) if has_password else None,
    )
    root.set_devices(created, tuple(devices))
    for device in devices:
        if device.seed and device.kind == "virtual":
            world.authenticator_seeds[device.serial] = device.seed
    account = Account(account_id, kind, root)  # type: ignore[arg-type]
    world.accounts[account_id] = account
    return account


def _trust_iam_in_organizations() -> None:
    """Moto's list of services that support trusted access lacks IAM (centralised root access
    needs it); add it, so EnableAWSServiceAccess(iam.amazonaws.com) works as in AWS."""
    from moto.organizations.models import FakeServiceAccess

    if "iam.amazonaws.com" not in FakeServiceAccess.TRUSTED_SERVICES:
        FakeServiceAccess.TRUSTED_SERVICES.append("iam.amazonaws.com")


def _organization(world: World, members: int) -> list[str]:
    """Create the organization (all features, IAM trusted access, root access features on)."""
    from moto.organizations.models import organizations_backends

    _trust_iam_in_organizations()
    backend = organizations_backends[MANAGEMENT_ID]["aws"]
    org = backend.create_organization(region="us-east-1", FeatureSet="ALL")
    backend.enable_aws_service_access(ServicePrincipal="iam.amazonaws.com")
    ids = [_add_member(backend, index, suspended=_suspended(index)) for index in range(members)]
    world.management_account_id = MANAGEMENT_ID
    world.organization_id = org["Organization"]["Id"]
    world.org_features = {"RootCredentialsManagement", "RootSessions"}
    return ids


def _suspended(index: int) -> bool:
    return index % FLEET_SUSPENDED == FLEET_SUSPENDED - 1


def _add_member(backend: Any, index: int, suspended: bool = False) -> str:
    """What moto's CreateAccount does, without its scan of every account per policy attachment
    (quadratic: 5,000 members took seconds)."""
    from moto.organizations import utils
    from moto.organizations.models import FakeAccount, organizations_backends

    account = FakeAccount(
        backend.org, AccountName=f"member-{index + 1}", Email=f"member-{index + 1}@example.com"
    )
    if suspended:
        account.status = account.state = "SUSPENDED"
    backend.accounts.append(account)
    for policy_id in (utils.DEFAULT_SCP_POLICY_ID, utils.DEFAULT_RCP_POLICY_ID):
        policy = backend.get_policy_by_id(policy_id)
        account.attached_policies.append(policy)
        policy.attachments.append(account)
    organizations_backends.master_accounts[account.id] = (backend.account_id, backend.partition)
    return str(account.id)


def build(world: World) -> None:
    """Fill ``world`` (and moto) for ``world.scenario``."""
    name = validate(world.scenario)
    now = world.clock.now()
    if name in ("standalone", "no-mfa", "root-access-keys"):
        acct = STANDALONE_ID
        devices = [] if name == "no-mfa" else [_virtual(acct, "root-authenticator", now)]
        account = _account(world, acct, "standalone", devices)
        world.target_account_id = acct
        add_iam_principal(world, acct, "admin")
        if name == "root-access-keys":
            _root_keys(world, account)
        return
    if name == "management":
        _organization(world, 1)
        _account(
            world, MANAGEMENT_ID, "management", [_virtual(MANAGEMENT_ID, "root-authenticator", now)]
        )
        world.target_account_id = MANAGEMENT_ID
        add_iam_principal(world, MANAGEMENT_ID, "admin")
        add_iam_principal(world, MANAGEMENT_ID, "org-admin")
        return
    if name in ("member", "member-no-password"):
        member = _organization(world, 1)[0]
        _account(
            world, MANAGEMENT_ID, "management", [_virtual(MANAGEMENT_ID, "root-authenticator", now)]
        )
        if name == "member":
            devices = [_fido(member, "YubiKey", now), _virtual(member, "root-authenticator", now)]
            _account(world, member, "member", devices)
        else:
            _account(
                world,
                member,
                "member",
                [_virtual(member, "root-authenticator", now)],
                has_password=False,
            )
        world.target_account_id = member
        add_iam_principal(world, member, "admin")
        add_iam_principal(world, MANAGEMENT_ID, "org-admin")
        return
    fleet = FLEET_NAME.fullmatch(name)
    assert fleet is not None  # validate() said so
    members = _organization(world, int(fleet.group(1)))
    world.org_features = set(FLEET_FEATURES[fleet.group(2) or ""])
    if fleet.group(3):
        world.faults.extend(
            FaultRule("throttle", op, every=k) for op, k in FLEET_THROTTLE_EVERY.items()
        )
    _account(
        world, MANAGEMENT_ID, "management", [_virtual(MANAGEMENT_ID, "root-authenticator", now)]
    )
    for index, member in enumerate(members):
        world.lazy_accounts[member] = _fleet_builder(world, member, index)
    world.target_account_id = members[0]
    world.account(members[0])
    add_iam_principal(world, members[0], "admin")
    add_iam_principal(world, MANAGEMENT_ID, "org-admin")


#: fleet members, by index: every 7th also keeps long-term root credentials (an access key and
#: a signing certificate), every 13th has devices enabled four years ago, every 11th is suspended
FLEET_LONG_TERM_KEYS, FLEET_OLD_DEVICES, FLEET_SUSPENDED = 7, 13, 11
#: every 10th member (index 9, 19, ...: no password) keeps a virtual device
FLEET_MFA_LEFT = 10


def _fleet_builder(world: World, account_id: str, index: int) -> Callable[[], Account]:
    """Mixed fleet: no MFA, one virtual, FIDO + virtual, hardware, no password (by index % 5;
    every other no-password member keeps a virtual device: the member whose password was
    deleted and whose MFA was left, which the fleet audit plans a removal for); long-term root
    credentials, old devices and suspended accounts on top (see above)."""

    def build_one() -> Account:
        now = world.clock.now()
        kind = index % 5
        devices: list[MfaDevice] = []
        if kind == 1:
            devices = [_virtual(account_id, "root-authenticator", now)]
        elif kind == 2:
            devices = [_fido(account_id, "YubiKey", now), _virtual(account_id, "phone", now)]
        elif kind == 3:
            devices = [_hardware(account_id, now)]
        elif index % FLEET_MFA_LEFT == FLEET_MFA_LEFT - 1:
            devices = [_virtual(account_id, "left-behind", now)]
        old = index % FLEET_OLD_DEVICES == FLEET_OLD_DEVICES - 1
        account = _account(
            world,
            account_id,
            "member",
            devices,
            has_password=kind != 4,
            enabled_days_ago=4 * 365 if old else 30,
        )
        if index % FLEET_LONG_TERM_KEYS == FLEET_LONG_TERM_KEYS - 1:
            created = account.root.created + dt.timedelta(days=1)
            # a key nobody signs with (no principal): what the audit must find, not use
            account.root.access_keys.append(RootAccessKey(new_key_id("AKIA"), "Active", created))
            world.add_root_signing_certificate(account, created)
        del world.accounts[account_id]  # World.account() stores it
        return account

    if index == 0:
        # the target always has something to remove
        return lambda: _fleet_target(world, account_id)
    return build_one


def _fleet_target(world: World, account_id: str) -> Account:
    now = world.clock.now()
    account = _account(
        world, account_id, "member", [_virtual(account_id, "root-authenticator", now)]
    )
    del world.accounts[account_id]
    return account


def _root_keys(world: World, account: Account) -> None:
    """Long-term root credentials (what AWS advises against): an access key, the 'root'
    principal that signs with it, and an X.509 signing certificate."""
    created = account.root.created + dt.timedelta(days=1)
    principal = world.add_root_access_key(account, created)
    world.named["root"] = principal
    world.add_root_signing_certificate(account, created)
