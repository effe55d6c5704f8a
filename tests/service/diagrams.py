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


def escalation_process(key: str = "escalating_approval", after: str = "PT48H") -> bytes:
    """An approval by the department head that escalates to the supervisors after `after`."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:process id="{key}" name="限时审批" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_head" name="dept_head">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>approve</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>timeout</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_sup" name="监督小组">
        <bpmn:flowNodeRef>escalated_approve</bpmn:flowNodeRef><bpmn:flowNodeRef>end_escalated</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="approve" name="部门负责人审批">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="approval" value="true" />
          <spiffworkflow:property name="due" value="&quot;{after}&quot;" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="timeout" name="超时" attachedToRef="approve" cancelActivity="true">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition id="td_{key}"><bpmn:timeDuration>"{after}"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:userTask id="escalated_approve" name="监督小组督办审批">
      <bpmn:extensionElements>
        <spiffworkflow:properties><spiffworkflow:property name="approval" value="true" /></spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_escalated"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve" />
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="end" />
    <bpmn:sequenceFlow id="f3" sourceRef="timeout" targetRef="escalated_approve" />
    <bpmn:sequenceFlow id="f4" sourceRef="escalated_approve" targetRef="end_escalated" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def timer_start_process(key: str, cycle: str) -> bytes:
    """A process started by a cycle timer (e.g. every quarter), with one task for the supervisors."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:process id="{key}" name="定时发起" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_{key}" name="supervisor">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="每季度">
      <bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition id="td_{key}"><bpmn:timeCycle>"{cycle}"</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="review" name="季度检查">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>季度检查</spiffworkflow:instructionsForEndUser>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def wait_process(key: str, duration: str) -> bytes:
    """start → wait (timer) → end: the smallest thing a scheduler can fire."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:process id="{key}" name="等待" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="等待">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="td_{key}"><bpmn:timeDuration>"{duration}"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def two_start_process(key: str, message: str) -> bytes:
    """A process started either by hand or by message `message` (payload lands under `request`)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:message id="msg_{key}" name="{message}" />
  <bpmn:process id="{key}" name="两种发起" isExecutable="true">
    <bpmn:laneSet id="ls_{key}">
      <bpmn:lane id="lane_{key}" name="supervisor">
        <bpmn:flowNodeRef>start_hand</bpmn:flowNodeRef><bpmn:flowNodeRef>start_msg</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>handle</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start_hand"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:startEvent id="start_msg" name="收到通知">
      <bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:messageEventDefinition id="med_{key}" messageRef="msg_{key}">
        <bpmn:extensionElements><spiffworkflow:messageVariable>request</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:userTask id="handle" name="处理">
      <bpmn:extensionElements><spiffworkflow:instructionsForEndUser>处理</spiffworkflow:instructionsForEndUser></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start_hand" targetRef="handle" />
    <bpmn:sequenceFlow id="f2" sourceRef="start_msg" targetRef="handle" />
    <bpmn:sequenceFlow id="f3" sourceRef="handle" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def throwing_process(key: str, message: str) -> bytes:
    """start → notify (message end event carrying {'department': department})."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_{key}" targetNamespace="http://inkless">
  <bpmn:message id="msg_{key}" name="{message}">
    <bpmn:extensionElements><spiffworkflow:messagePayload>{{"department": department}}</spiffworkflow:messagePayload></bpmn:extensionElements>
  </bpmn:message>
  <bpmn:process id="{key}" name="发出通知" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:endEvent id="notify" name="发出通知">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:messageEventDefinition id="med_{key}" messageRef="msg_{key}" />
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="notify" />
  </bpmn:process>
</bpmn:definitions>
""".encode()
