"""What the frequency guard counts: when each customer last wrote, and one row per counted send."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

__all__ = ["CustomerWindow", "FrequencySlot"]


class CustomerWindow(SQLModel, table=True):
    """When the customer last wrote on a channel; the 微信客服 reply window opens there."""

    __tablename__ = "compliance_customer_windows"
    tenant_id: str = Field(primary_key=True)
    customer_id: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    last_customer_at: dt.datetime


class FrequencySlot(SQLModel, table=True):
    """One counted send; the primary key makes each numbered slot of a period takeable exactly once."""

    __tablename__ = "compliance_frequency_slots"
    tenant_id: str = Field(primary_key=True)
    scope: str = Field(primary_key=True)  # kf_window | group_daily | proactive_daily
    key: str = Field(primary_key=True)  # customer, or staff + customer
    period: str = Field(primary_key=True)  # local date, or the window's opening time
    slot: int = Field(primary_key=True)
    staff_id: str = ""
    sent_at: dt.datetime
