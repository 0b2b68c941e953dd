// The three dashboards, kept as Grafana's own JSON model (edit them in Grafana, export,
// and save them under dashboards/) and parameterised here: tags and the data source
// variable come from _config.
local withConfig(board, config) = board {
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
