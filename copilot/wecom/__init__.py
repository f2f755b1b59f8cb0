"""WeCom (企业微信): `protocol` speaks WeCom's wire formats and APIs; `automation` decides what to do
with what arrives (welcomes, 微信客服 replies, staff notifications) and sends through the outbox.
Automation imports the protocol, never the other way round.
"""
