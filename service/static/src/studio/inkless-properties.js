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
  CheckboxEntry, SelectEntry, TextAreaEntry, TextFieldEntry,
  isCheckboxEntryEdited, isSelectEntryEdited, isTextAreaEntryEdited, isTextFieldEntryEdited,
} from "@bpmn-io/properties-panel";
import { jsx } from "@bpmn-io/properties-panel/preact/jsx-runtime";
import { useService } from "bpmn-js-properties-panel";
import { getBusinessObject, is } from "bpmn-js/lib/util/ModelUtil";

const MULTI = "properties-panel.multi-command-executor";

// What the pickers offer: the performers the studio API lists for this model (modeler.js fills it
// before the diagram is shown).
export const choices = { performers: [] };

// Durations in words and back: "2 天" / "2 days" → P2D, "4 小时" → PT4H, "1 天 4 小时" → P1DT4H.
// The `due` property is an expression, so a duration is stored as the text literal "P2D".
const UNITS = [
  { iso: "W", time: false, words: ["周", "星期", "week", "weeks", "w"] },
  { iso: "D", time: false, words: ["天", "日", "day", "days", "d"] },
  { iso: "H", time: true, words: ["小时", "个小时", "时", "hour", "hours", "h"] },
  { iso: "M", time: true, words: ["分钟", "分", "minute", "minutes", "min", "m"] },
];

export function durationFromWords(text) {
  const source = (text || "").trim();
  const parts = [...source.matchAll(/(\d+)\s*([^\d\s]+)\s*/g)];
  if (!parts.length || parts.map((p) => p[0]).join("").trim() !== source.replace(/\s+$/, "")) return null;
  let date = "", time = "";
  for (const [, amount, word] of parts) {
    const unit = UNITS.find((u) => u.words.includes(word.toLowerCase()));
    if (!unit) return null;
    if (unit.time) time += amount + unit.iso; else date += amount + unit.iso;
  }
  return "P" + date + (time ? "T" + time : "");
}

export function durationInWords(expression, unitWords) {
  const match = /^\s*["']?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?["']?\s*$/.exec(expression || "");
  if (!match || !match.slice(1).some(Boolean)) return "";
  return ["W", "D", "H", "M"].map((iso, i) => (match[i + 1] ? match[i + 1] + " " + unitWords[iso] : ""))
    .filter(Boolean).join(" ");
}

const DURATIONS = ["PT4H", "P1D", "P2D", "P3D", "P5D", "P1W", "P2W"];

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

function SelectProp(props) {
  const { element, id, label, description, get, set, options } = props;
  return jsx(SelectEntry, { element, id, label, description, getValue: () => get(element), setValue: (v) => set(element, v),
    getOptions: () => options() });
}

function CheckProp(props) {
  const { element, id, label, get, set } = props;
  return jsx(CheckboxEntry, { element, id, label, getValue: () => get(element), setValue: (v) => set(element, v) });
}

function text(id, label, get, set, description) {
  return { id, component: TextProp, isEdited: isTextFieldEntryEdited, label, get, set, description };
}

function select(id, label, get, set, options, description) {
  return { id, component: SelectProp, isEdited: isSelectEntryEdited, label, get, set, options, description };
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
      // Pickers for who and by when; the text fields below them keep the full expression language.
      const kinds = ["person", "group", "user"];
      const performerOptions = () => [{ value: "", label: L("pick_performer") }].concat(kinds.map((kind) => ({
        label: L("kind_" + kind),
        children: choices.performers.filter((c) => c.kind === kind).map((c) => ({ value: c.spec, label: c.name })),
      })).filter((g) => g.children.length));
      const picked = (el) => {
        const current = p.get(el);
        return choices.performers.some((c) => c.spec === current) ? current : "";
      };
      const units = { W: L("unit_week"), D: L("unit_day"), H: L("unit_hour"), M: L("unit_minute") };
      const dueOptions = () => [{ value: "", label: L("pick_due") }].concat(
        DURATIONS.map((iso) => ({ value: iso, label: durationInWords(iso, units) })));
      const pickedDue = (el) => {
        const iso = d.get(el).replace(/^["']|["']$/g, "");
        return DURATIONS.includes(iso) ? iso : "";
      };
      const setDue = (el, v) => {
        const iso = durationFromWords(v);
        d.set(el, iso ? JSON.stringify(iso) : v);
      };
      groups.splice(1, 0, {
        id: "inkless-task", label: L("task"),
        entries: [
          select("inkless-performers-pick", L("performers"), picked, (el, v) => { if (v) p.set(el, v); }, performerOptions),
          text("inkless-performers", L("performers_spec"), p.get, p.set, L("performers_help")),
          text("inkless-form", L("form"), f.get, f.set, L("form_help")),
          text("inkless-ui-form", L("ui_form"), u.get, u.set),
          select("inkless-due-pick", L("due"), pickedDue, (el, v) => { if (v) d.set(el, JSON.stringify(v)); }, dueOptions),
          text("inkless-due", L("due_expression"), d.get, setDue,
            [durationInWords(d.get(element), units), L("due_help")].filter(Boolean).join(" · ")),
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
