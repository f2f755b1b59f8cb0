"""Reading one conversation: turns, the cue lexicon, the retrieval query, the stage (破冰 · 挖需 · 推荐 ·
回访), the purchase-intent score and message-intent labels.

Owns pure analysis of text and profiles. Must not touch storage, the network or the drafting steps;
the message-intent classifier is the only part that uses an embedder, handed to it by the caller.
"""
