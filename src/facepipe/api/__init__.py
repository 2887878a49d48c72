"""The face and gallery API as operations: functions of ``Inputs``, with no transport code."""
