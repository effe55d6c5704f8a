"""Small diagrams built in tests, for cases the fixture corpus does not need to keep."""
from __future__ import annotations

from xml.sax.saxutils import escape


def script_process(key: str, script: str, name: str = "脚本测试") -> bytes:
    """start → prepare (user task, initiator) → run_script → end."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:process id="{key}" name="{name}" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_{key}" name="initiator">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>prepare</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>run_script</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="prepare" name="准备">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>准备数据</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:scriptTask id="run_script" name="运行脚本">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="run_script" />
    <bpmn:sequenceFlow id="f3" sourceRef="run_script" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def message_process(key: str, message: str) -> bytes:
    """start → wait for message → record (user task) → end; the payload lands under `received`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:message id="msg_{key}" name="{message}" />
  <bpmn:process id="{key}" name="消息测试" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_{key}" name="initiator">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>wait</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>record</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="等待通知">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:messageEventDefinition id="med_{key}" messageRef="msg_{key}">
        <bpmn:extensionElements><spiffworkflow:messageVariable>received</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="record" name="登记">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>收到 {{{{ received.amount }}}}</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="record" />
    <bpmn:sequenceFlow id="f3" sourceRef="record" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()
