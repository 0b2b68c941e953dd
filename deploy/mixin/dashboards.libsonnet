// The three dashboards, kept as Grafana's own JSON model (edit them in Grafana, export,
// and save them under dashboards/) and parameterised here: tags, the data source
// variable and the used-share thresholds come from _config.
//
// The JSON files are saved with the default thresholds (`authored` below). Every
// green/orange/red threshold scale on a used share (its steps below 1) gets
// _config.almostExhaustedWarning and almostExhaustedCritical instead, and so do the
// titles, descriptions and queries that spell them ("80 %" and "95 %", and the
// `>= 0.8)` of the "Meters at 80 % or more" stat). Overriding the _config thresholds
// thus moves the bars, lines and counts with the alerts
// (tests/e2e/deploy/test_mixin.py).
local authored = { warning: 0.8, critical: 0.95 };

// A number as PromQL text, and as a percentage for people ("80 %", "87.5 %").
local num(x) = std.format('%.15g', x);
local percent(x) = std.format('%.6g %%', x * 100);

local isShareScale(thresholds) =
  std.objectHas(thresholds, 'steps')
  && std.isArray(thresholds.steps)
  && std.length(thresholds.steps) == 3
  && [step.color for step in thresholds.steps] == ['green', 'orange', 'red']
  && thresholds.steps[1].value != null
  && thresholds.steps[2].value < 1;

// Only these strings spell thresholds (std.strReplace on every string of the boards
// would take jsonnet seconds).
local textFields = { title: true, description: true, expr: true };

local replaceAll(text, pairs) =
  std.foldl(function(out, pair) std.strReplace(out, pair[0], pair[1]), pairs, text);

// `value` with every share threshold scale and threshold text retuned: `steps` are
// the retuned steps' values, `pairs` the [authored, configured] texts (both computed
// once per board: std.format is slow in jsonnet).
local retune(value, steps, pairs) =
  if std.isObject(value) then
    if isShareScale(value) then
      value {
        steps: [
          value.steps[0],
          value.steps[1] { value: steps[0] },
          value.steps[2] { value: steps[1] },
        ],
      }
    else
      {
        [field]:
          local inner = value[field];
          if std.objectHas(textFields, field) && std.isString(inner)
          then replaceAll(inner, pairs)
          else retune(inner, steps, pairs)
        for field in std.objectFields(value)
      }
  else if std.isArray(value) then
    [retune(item, steps, pairs) for item in value]
  else
    value;

local retuned(board, config) =
  local w = config.almostExhaustedWarning, c = config.almostExhaustedCritical;
  retune(
    board,
    [w, c],
    [
      ['>= %s)' % num(authored.warning), '>= %s)' % num(w)],
      [percent(authored.warning), percent(w)],
      [percent(authored.critical), percent(c)],
    ]
  );

local withConfig(board, config) = retuned(board, config) {
  tags: config.dashboardTags,
  templating+: {
    list: [
      if variable.type == 'datasource' then variable { regex: config.datasourceRegex } else variable
      for variable in super.list
    ],
  },
};

{
  grafanaDashboards+:: {
    // jsonnet imports only literal paths, hence one line per dashboard.
    'saas-quota-account-detail.json': withConfig(import 'dashboards/saas-quota-account-detail.json', $._config),
    'saas-quota-exporter-health.json': withConfig(import 'dashboards/saas-quota-exporter-health.json', $._config),
    'saas-quota-overview.json': withConfig(import 'dashboards/saas-quota-overview.json', $._config),
  },
}
