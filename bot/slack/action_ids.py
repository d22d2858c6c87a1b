"""The action and callback ids Signoff renders, shared by renderer, parser and listeners.

Every interactive element Signoff posts has an ``action_id`` starting with ``signoff:``, so one
listener registered for ``ACTION_ID_PATTERN`` sees them all and ``parse.parse_action`` tells
them apart. What a click *refers to* (run, interrupt) is never in these ids: it is the opaque
reference the caller passes in, carried in the button ``value`` (or, for a select menu, which
has no value of its own, in the ``block_id`` of its actions block).
"""

from __future__ import annotations

import re

__all__ = [
    "ACKNOWLEDGE",
    "ACTION_ID_PATTERN",
    "APPROVE",
    "APPROVE_MODAL",
    "CALLBACK_ID_PATTERN",
    "CHOOSE_PREFIX",
    "CONTROLS_BLOCK_ID",
    "MODAL_CALLBACK_ID",
    "REJECT",
    "REJECT_MODAL",
    "RESPOND",
    "SELECT",
    "SNOOZE_HOUR",
    "SNOOZE_PATTERN",
    "SNOOZE_TOMORROW",
    "modal_callback_id",
]

APPROVE = "signoff:approve"  # decide at once: approved
REJECT = "signoff:reject"  # decide at once: rejected
APPROVE_MODAL = "signoff:approve:modal"  # approving needs more fields: open the modal
REJECT_MODAL = "signoff:reject:modal"  # rejecting needs more fields: open the modal
CHOOSE_PREFIX = "signoff:choose:"  # + the option's value: one button per option
SELECT = "signoff:select"  # a static_select of options; the choice is its selected_option
RESPOND = "signoff:respond"  # open the modal for a form-shaped resume model
ACKNOWLEDGE = "signoff:acknowledge"  # a resume model without fields: one click answers

ACTION_ID_PATTERN = re.compile(r"^signoff:")
# Snoozes are not answers: their own prefix keeps them out of ACTION_ID_PATTERN's listener.
SNOOZE_HOUR = "signoff_snooze:1h"  # remind the clicker in an hour
SNOOZE_TOMORROW = "signoff_snooze:tomorrow"  # remind the clicker at 9:00 tomorrow, their time
SNOOZE_PATTERN = re.compile(r"^signoff_snooze:(1h|tomorrow)$")
CONTROLS_BLOCK_ID = "signoff_controls"

MODAL_CALLBACK_ID = "signoff_respond"
# The modal opened from Approve/Reject carries the decision in its callback_id, because
# private_metadata holds only the caller's reference; Slack echoes both back untouched.
CALLBACK_ID_PATTERN = re.compile(r"^signoff_respond(?::(approve|reject))?$")


def modal_callback_id(decision: bool | None) -> str:
    """The ``callback_id`` of a response modal, recording a decision already made by a click."""
    if decision is None:
        return MODAL_CALLBACK_ID
    return f"{MODAL_CALLBACK_ID}:{'approve' if decision else 'reject'}"
