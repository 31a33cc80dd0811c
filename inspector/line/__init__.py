"""On the line: trigger in (MQTT, OPC UA), verdict out after commit (MQTT, OPC UA), with an outbox.

settings: [output] / [output.mqtt] / [output.opcua] / [trigger] and the --publish URLs.
outbox: per-output delivery cursors over the committed log and the messages built from it.
publisher: one thread per output that delivers in log order and advances its cursor on acknowledgement.
mqtt_out, opcua_out: the two channels. trigger: the trigger queue and the FrameSource wrapper.
"""
