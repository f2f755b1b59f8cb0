"""The send gate: the one place that says yes to a text a staff member is about to send to a customer.

Owns: judging the exact text (the tenant's rules and the frequency guard, at the Copilot's clock), holding
what needs a human in an approval item and letting it through once approved (each approval lets one send
through), recording accepted sends and the frequency slots they take.
Must not: speak HTTP or WeCom (the sidebar puts the accepted text into the chat), or decide approvals.
"""

from copilot.sends.gate import SendGate, SendHeldError, SendOut

__all__ = ["SendGate", "SendHeldError", "SendOut"]
