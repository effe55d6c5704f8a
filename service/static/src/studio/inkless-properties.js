// The properties Inkless reads from a diagram, as a bpmn-js-properties-panel provider:
//   user tasks  spiffworkflow:properties performers / formJsonSchemaFilename / formUiSchemaFilename /
//               due / approval, spiffworkflow:instructionsForEndUser, pre- and post-scripts
//   script tasks  bpmn:script
//   service tasks  spiffworkflow:serviceTaskOperator id / resultVariable
//   sequence flows out of a gateway  bpmn:conditionExpression
//   message events  spiffworkflow:messageVariable (catch) / spiffworkflow:messagePayload (throw)
// Timers, messages, names and ids come from the standard BPMN provider. Every change is one command
// on the command stack, so undo/redo (Ctrl+Z / Ctrl+Y) covers it.
import {
  CheckboxEntry, TextAreaEntry, TextFieldEntry,
  isCheckboxEntryEdited, isTextAreaEntryEdited, isTextFieldEntryEdited,
} from "@bpmn-io/properties-panel";
import { jsx } from "@bpmn-io/properties-panel/preact/jsx-runtime";
import { useService } from "bpmn-js-properties-panel";
import { getBusinessObject, is } from "bpmn-js/lib/util/ModelUtil";

const MULTI = "properties-panel.multi-command-executor";

function extension(bo, type) {
  return ((bo.extensionElements && bo.extensionElements.values) || []).find((v) => v.$type === type);
}

export function property(bo, name) {
  const props = extension(bo, "spiffworkflow:Properties");
  const found = props && (props.properties || []).find((p) => p.name === name);
  return found ? found.value || "" : "";
}

function bodyText(bo, type) {
  const el = extension(bo, type);
  return el ? el.value || "" : "";
}

// Commands that make sure bo.extensionElements exists; returns [commands, extensionElements].
function ensureExtensions(element, bo, bpmnFactory) {
  if (bo.extensionElements) return [[], bo.extensionElements];
  const ext = bpmnFactory.create("bpmn:ExtensionElements", { values: [] });
  ext.$parent = bo;
  return [[{ cmd: "element.updateModdleProperties", context: { element, moddleElement: bo, properties: { extensionElements: ext } } }], ext];
}

export function setProperty(injector, element, name, value) {
  const bo = getBusinessObject(element);
  const bpmnFactory = injector.get("bpmnFactory");
  const [commands, ext] = ensureExtensions(element, bo, bpmnFactory);
  let props = extension(bo, "spiffworkflow:Properties");
  if (!props) {
    props = bpmnFactory.create("spiffworkflow:Properties", { properties: [] });
    props.$parent = ext;
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: ext, properties: { values: [...(ext.values || []), props] } } });
  }
  const existing = (props.properties || []).find((p) => p.name === name);
  if (existing && !value) {
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: props, properties: { properties: props.properties.filter((p) => p !== existing) } } });
  } else if (existing) {
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: existing, properties: { value } } });
  } else if (value) {
    const created = bpmnFactory.create("spiffworkflow:Property", { name, value });
    created.$parent = props;
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: props, properties: { properties: [...(props.properties || []), created] } } });
  }
  if (commands.length) injector.get("commandStack").execute(MULTI, commands);
}

function setBodyText(injector, element, type, value, target) {
  const bo = target || getBusinessObject(element);
  const bpmnFactory = injector.get("bpmnFactory");
  const [commands, ext] = ensureExtensions(element, bo, bpmnFactory);
  const existing = extension(bo, type);
  if (existing && !value) {
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: ext, properties: { values: ext.values.filter((v) => v !== existing) } } });
  } else if (existing) {
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: existing, properties: { value } } });
  } else if (value) {
    const created = bpmnFactory.create(type, { value });
    created.$parent = ext;
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: ext, properties: { values: [...(ext.values || []), created] } } });
  }
  if (commands.length) injector.get("commandStack").execute(MULTI, commands);
}

function setOperator(injector, element, attribute, value) {
  const bo = getBusinessObject(element);
  const bpmnFactory = injector.get("bpmnFactory");
  const [commands, ext] = ensureExtensions(element, bo, bpmnFactory);
  const existing = extension(bo, "spiffworkflow:ServiceTaskOperator");
  if (existing) {
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: existing, properties: { [attribute]: value || undefined } } });
  } else if (value) {
    const created = bpmnFactory.create("spiffworkflow:ServiceTaskOperator", { [attribute]: value });
    created.$parent = ext;
    commands.push({ cmd: "element.updateModdleProperties", context: { element, moddleElement: ext, properties: { values: [...(ext.values || []), created] } } });
  }
  if (commands.length) injector.get("commandStack").execute(MULTI, commands);
}

// Entry components live at module level so the panel keeps them (and the caret) across re-renders.
function TextProp(props) {
  const { element, id, label, description, get, set } = props;
  const debounce = useService("debounceInput");
  return jsx(TextFieldEntry, { element, id, label, description, debounce, getValue: () => get(element), setValue: (v) => set(element, v) });
}

function AreaProp(props) {
  const { element, id, label, description, get, set } = props;
  const debounce = useService("debounceInput");
  return jsx(TextAreaEntry, { element, id, label, description, debounce, rows: 4, monospace: true, getValue: () => get(element), setValue: (v) => set(element, v) });
}

function CheckProp(props) {
  const { element, id, label, get, set } = props;
  return jsx(CheckboxEntry, { element, id, label, getValue: () => get(element), setValue: (v) => set(element, v) });
}

function text(id, label, get, set, description) {
  return { id, component: TextProp, isEdited: isTextFieldEntryEdited, label, get, set, description };
}

function area(id, label, get, set, description) {
  return { id, component: AreaProp, isEdited: isTextAreaEntryEdited, label, get, set, description };
}

function fromGateway(element) {
  const bo = getBusinessObject(element);
  return is(element, "bpmn:SequenceFlow") && bo.sourceRef &&
    (is(bo.sourceRef, "bpmn:ExclusiveGateway") || is(bo.sourceRef, "bpmn:InclusiveGateway"));
}

function messageDefinition(element) {
  const bo = getBusinessObject(element);
  return (bo.eventDefinitions || []).find((d) => is(d, "bpmn:MessageEventDefinition"));
}

export default function InklessPropertiesProvider(propertiesPanel, injector) {
  const labels = JSON.parse(document.getElementById("studio").dataset.labels || "{}");
  const L = (key) => labels[key] || key;
  const prop = (name) => ({
    get: (el) => property(getBusinessObject(el), name),
    set: (el, v) => setProperty(injector, el, name, (v || "").trim()),
  });
  const body = (type) => ({
    get: (el) => bodyText(getBusinessObject(el), type),
    set: (el, v) => setBodyText(injector, el, type, v || ""),
  });

  this.getGroups = (element) => (groups) => {
    if (is(element, "bpmn:UserTask")) {
      const p = prop("performers"), f = prop("formJsonSchemaFilename"), u = prop("formUiSchemaFilename"), d = prop("due");
      const i = body("spiffworkflow:InstructionsForEndUser");
      groups.splice(1, 0, {
        id: "inkless-task", label: L("task"),
        entries: [
          text("inkless-performers", L("performers"), p.get, p.set, L("performers_help")),
          text("inkless-form", L("form"), f.get, f.set, L("form_help")),
          text("inkless-ui-form", L("ui_form"), u.get, u.set),
          text("inkless-due", L("due"), d.get, d.set, L("due_help")),
          { id: "inkless-approval", component: CheckProp, isEdited: isCheckboxEntryEdited, label: L("approval"),
            get: (el) => property(getBusinessObject(el), "approval") === "true",
            set: (el, v) => setProperty(injector, el, "approval", v ? "true" : "") },
          area("inkless-instructions", L("instructions"), i.get, i.set),
        ],
      });
    }
    if (is(element, "bpmn:Activity") && !is(element, "bpmn:SubProcess")) {
      const pre = body("spiffworkflow:PreScript"), post = body("spiffworkflow:PostScript");
      groups.push({ id: "inkless-scripts", label: L("hooks"), entries: [
        area("inkless-pre-script", L("pre_script"), pre.get, pre.set),
        area("inkless-post-script", L("post_script"), post.get, post.set),
      ] });
    }
    if (is(element, "bpmn:ScriptTask")) {
      groups.splice(1, 0, { id: "inkless-script", label: L("script"), entries: [
        area("inkless-script-text", L("script"), (el) => getBusinessObject(el).script || "",
          (el, v) => injector.get("modeling").updateProperties(el, { script: v || undefined })),
      ] });
    }
    if (is(element, "bpmn:ServiceTask")) {
      const op = (attribute) => [(el) => { const o = extension(getBusinessObject(el), "spiffworkflow:ServiceTaskOperator"); return o ? o[attribute] || "" : ""; },
        (el, v) => setOperator(injector, el, attribute, (v || "").trim())];
      groups.splice(1, 0, { id: "inkless-service", label: L("service"), entries: [
        text("inkless-service-id", L("service"), ...op("id")),
        text("inkless-service-result", L("result_variable"), ...op("resultVariable")),
      ] });
    }
    const message = messageDefinition(element);
    if (message) {
      const catching = is(element, "bpmn:CatchEvent");
      const type = catching ? "spiffworkflow:MessageVariable" : "spiffworkflow:MessagePayload";
      groups.push({ id: "inkless-message", label: L("message_data"), entries: [
        (catching ? text : area)("inkless-message-data", L(catching ? "message_variable" : "message_payload"),
          (el) => bodyText(messageDefinition(el), type),
          (el, v) => setBodyText(injector, el, type, (v || "").trim(), messageDefinition(el))),
      ] });
    }
    if (fromGateway(element)) {
      groups.splice(1, 0, { id: "inkless-condition", label: L("condition"), entries: [
        area("inkless-condition-text", L("condition"), (el) => (getBusinessObject(el).conditionExpression || {}).body || "",
          (el, v) => {
            const expression = v ? injector.get("bpmnFactory").create("bpmn:FormalExpression", { body: v }) : undefined;
            injector.get("modeling").updateProperties(el, { conditionExpression: expression });
          }, L("condition_help")),
      ] });
    }
    return groups;
  };
  propertiesPanel.registerProvider(400, this);
}

InklessPropertiesProvider.$inject = ["propertiesPanel", "injector"];
