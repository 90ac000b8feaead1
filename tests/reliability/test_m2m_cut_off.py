"""M2M tokens cached by the workers of two machines are cut off by the very next request.

Two gunicorn instances ("machines", two workers each) share one PostgreSQL and one Redis,
as a deployment does. Their workers keep the M2M tokens they accepted in memory
(``apikeys.tokencache``); a change made through the services, by a third process (an
operator's ``manage.py shell``), must be honoured by every worker of both machines on the
first request after the call returned.

The test first shows the caches are really in play: a write to the database *past* the
services (so nobody tells Redis) is not seen by the workers that hold the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest

from tests.servers import Cluster, RedisServer, Service, manage, production_env

pytestmark = [pytest.mark.servers, pytest.mark.xdist_group("servers")]

# Requests per machine, from several clients at once, so that each of its workers serves
# some of them (and so holds the token).
ROUNDS = 24
CLIENTS = 4


@pytest.fixture(scope="module")
def machines(cluster: Cluster) -> Iterator[tuple[Service, Service]]:
    redis = RedisServer()
    redis.start()
    env = production_env(DATABASE_URL=cluster.fresh_database(), CACHE_URL=redis.url())
    first, second = Service(env=dict(env), workers=2), Service(env=dict(env), workers=2)
    first.start()
    try:
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()
        redis.stop()


def statuses(machines: tuple[Service, Service], token: str, path: str) -> set[int]:
    """The statuses of ROUNDS concurrent GETs of ``path`` on each machine."""

    def one(job: tuple[Service, int]) -> int:
        return job[0].request("GET", path, token=token).status

    jobs = [(machine, n) for machine in machines for n in range(ROUNDS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        return set(pool.map(one, jobs))


def service_call(machine: Service, client_id: str, call: str) -> None:
    """``services.<call>(application=..., ...)`` in a process of its own."""
    code = (
        "from oauth2_provider.models import get_application_model\n"
        "from apikeys import services\n"
        f"app = get_application_model().objects.get(client_id={client_id!r})\n"
        f"services.{call}\n"
    )
    manage(machine.env, "shell", "-c", code)


def sql(cluster: Cluster, machine: Service, statement: str, *params: str) -> None:
    database = machine.env["DATABASE_URL"].rsplit("/", 1)[1]
    with cluster.postgres.connect(database) as conn:
        conn.execute(statement, list(params))


def test_disable_narrow_and_new_secret_apply_on_the_next_request_of_every_machine(
    cluster: Cluster, machines: tuple[Service, Service]
) -> None:
    first, second = machines
    client_id, secret = first.m2m_app("read:api_keys", "read:apis", name="Cut off")
    token = second.token(client_id, secret)
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.OK}

    # Past the services: the workers holding the token do not see it (the caches are used).
    grant = (
        "UPDATE apikeys_m2mgrant SET disabled_at = {} WHERE application_id = "
        "(SELECT id FROM oauth2_provider_application WHERE client_id = %s)"
    )
    sql(cluster, first, grant.format("now()"), client_id)
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.OK}
    sql(cluster, first, grant.format("NULL"), client_id)

    actor = "actor=services.Actor.system()"
    service_call(first, client_id, f"m2m_application_disable(application=app, {actor})")
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.UNAUTHORIZED}

    service_call(first, client_id, f"m2m_application_enable(application=app, {actor})")
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.OK}

    scopes = "scopes=['read:api_keys']"
    service_call(
        first, client_id, f"m2m_application_set_scopes(application=app, {scopes}, {actor})"
    )
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.FORBIDDEN}
    assert statuses(machines, token, "/api/v1/api_keys") == {HTTPStatus.OK}

    service_call(first, client_id, f"m2m_application_regenerate_secret(application=app, {actor})")
    assert statuses(machines, token, "/api/v1/api_keys") == {HTTPStatus.UNAUTHORIZED}


def test_a_deleted_application_is_refused_on_the_next_request_of_every_machine(
    machines: tuple[Service, Service],
) -> None:
    first, second = machines
    client_id, secret = first.m2m_app("read:apis", name="Deleted")
    token = first.token(client_id, secret)
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.OK}
    service_call(
        second, client_id, "m2m_application_delete(application=app, actor=services.Actor.system())"
    )
    assert statuses(machines, token, "/api/v1/apis") == {HTTPStatus.UNAUTHORIZED}
