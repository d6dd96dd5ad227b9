"""Notifications through Airflow's own notifiers (the smtp provider's ``SmtpNotifier``, the
http provider's ``HttpNotifier`` for a webhook such as Slack's incoming webhooks), configured
by the plan's ``notify`` block: a task that failed after its retries, an
approval that waits (with the link to answer it), a run that is sealed (with the dossier
and the fingerprint of the key that signed it).

Built at parse time from the plan's header, without any look-up: the notifier opens its
SMTP connection (``notify.connection``) only when it sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retirement.plan.header import PlanHeader

FAILED = (
    "<p>Task <b>{{ ti.task_id }}</b>{% if ti.map_index is not none and ti.map_index >= 0 %} "
    "({{ ti.rendered_map_index or ti.map_index }}){% endif %} of run <b>{{ run_id }}</b> "
    "(DAG {{ dag.dag_id }}) failed after {{ ti.try_number }} attempt(s); nothing after it "
    "runs until it is cleared and succeeds.</p><p>{{ exception }}</p>"
    "<p>The runbook says what each error means and what to do (docs/runbook.md).</p>"
)
WAITING = (
    "<p>The deletion of run <b>{{ run_id }}</b> (DAG {{ dag.dag_id }}) waits for approval "
    "{{ task.step }} of {{ task.required }}.</p>"
    "<p>Who may answer: {% for u in task.assigned_users %}{{ u.name }} (user {{ u.id }})"
    "{% if not loop.last %}, {% endif %}{% endfor %}.</p>"
    '<p>Answer it here: <a href="{{ task.answer_link }}">{{ task.answer_link }}</a></p>'
)
SEALED = (
    "<p>Run <b>{{ run_id }}</b> (DAG {{ dag.dag_id }}) is sealed.</p>"
    "<p>Dossier: {{ ti.xcom_pull(task_ids='seal')['dossier'] }}<br>"
    "Signed with the key whose SHA-256 fingerprint is "
    "{{ ti.xcom_pull(task_ids='seal')['signing_key_sha256'] }}.</p>"
    "<p>Check it: retirement audit DOSSIER_DIR --public-key signing.pub.pem</p>"
)
MESSAGES = {
    "failure": ("[retirement] {{ dag.dag_id }}: {{ ti.task_id }} failed", FAILED),
    "approval": ("[retirement] {{ dag.dag_id }}: approval waits for you", WAITING),
    "sealed": ("[retirement] {{ dag.dag_id }}: run sealed", SEALED),
}


TEXTS = {  # the webhook's {"text": ...}, plain
    "failure": "{{ dag.dag_id }}: task {{ ti.task_id }} of run {{ run_id }} failed after "
    "{{ ti.try_number }} attempt(s): {{ exception }}",
    "approval": "{{ dag.dag_id }}: run {{ run_id }} waits for approval {{ task.step }} of "
    "{{ task.required }} by {% for u in task.assigned_users %}{{ u.name }}"
    "{% if not loop.last %}, {% endif %}{% endfor %}: {{ task.answer_link }}",
    "sealed": "{{ dag.dag_id }}: run {{ run_id }} is sealed; dossier "
    "{{ ti.xcom_pull(task_ids='seal')['dossier'] }}, signing key SHA-256 "
    "{{ ti.xcom_pull(task_ids='seal')['signing_key_sha256'] }}",
}


def notifiers(header: PlanHeader, event: str) -> list[Any]:
    """The notifiers of ``event`` ("failure", "approval", "sealed") the plan asks for: mail
    over its smtp connection, a JSON POST to its webhook (an http connection)."""
    notify = header.ops.notify
    if notify is None or event not in notify.events:
        return []
    out: list[Any] = []
    if notify.connection is not None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        subject, html = MESSAGES[event]
        out.append(
            SmtpNotifier(
                to=list(notify.to),
                from_email=notify.sender,
                subject=subject,
                html_content=html,
                smtp_conn_id=notify.connection,
            )
        )
    if notify.webhook is not None:
        from airflow.providers.http.notifications.http import HttpNotifier

        out.append(
            HttpNotifier(
                http_conn_id=notify.webhook,
                method="POST",
                json={"event": event, "text": TEXTS[event]},
            )
        )
    return out
