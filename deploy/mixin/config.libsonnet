// Every setting of the saas-quota-exporter mixin. Override any of them when you import
// the mixin, e.g.
//
//   (import 'saas-quota-exporter/mixin.libsonnet') + {
//     _config+:: { job: 'saas', dashboardBaseURL: 'https://grafana.internal.example' },
//   }
//
// Thresholds here are the DEFAULTS: the exporter exports per-meter overrides as
// saas_quota_alert_threshold_ratio{severity="warning"|"critical"} and
// saas_quota_alert_forecast_horizon_seconds, and the rules prefer those series where
// they exist (docs/alerting.md, "Thresholds").
{
  _config+:: {
    // The scrape job of the exporter: SaasQuotaExporterDown and SaasQuotaExporterAbsent.
    job: 'saas-quota',
    exporterSelector: 'job="%s"' % self.job,

    // Used share of the limit at which SaasQuotaAlmostExhausted fires, per severity,
    // for meters that export no saas_quota_alert_threshold_ratio of their own.
    almostExhaustedWarning: 0.8,
    almostExhaustedCritical: 0.95,
    // ... but only while what is left does not last: at the 7-day burn rate (or the
    // 1h and 6h ones, for meters with under 6 days of history or when they use it up
    // within fastForecastSeconds) times this factor, it runs out before the meter's
    // reset (for meters without one, within its forecast horizon). A share the reset
    // wipes before it runs out is no news. 1 is the burn rate itself; more warns earlier, but from ~1.18 a steady
    // burn that ends at 97 % at the reset fires (benchmarks/backtest.py,
    // steady-under-cap). Meters whose forecast is off (horizon 0) keep the plain level
    // alert.
    almostExhaustedBurnMargin: 1.1,
    // Used share (or a remaining of 0) for SaasQuotaExhausted.
    exhausted: 1,
    // SaasQuotaBurningTooFast: the used share this far ahead of the elapsed share.
    paceMargin: 0.25,
    // SaasQuotaPredictedExhaustion for meters without a reset time, in seconds, for
    // meters that export no saas_quota_alert_forecast_horizon_seconds.
    forecastHorizonSeconds: 604800,  // 7 days
    // SaasQuotaPredictedExhaustion fires without waiting for the 7-day rate when the
    // 1h and 6h rates use up what is left within this many seconds (and so does
    // SaasQuotaAlmostExhausted, at its threshold).
    fastForecastSeconds: 172800,  // 2 days
    // Seconds since the last successful poll before SaasQuotaDataStale.
    staleAfterSeconds: 1800,  // 30 minutes
    // Seconds before the API key expires for SaasQuotaApiKeyExpiring.
    keyExpiryWarningSeconds: 1209600,  // 14 days

    // `for:` of every alert.
    'for': {
      almostExhausted: '15m',
      exhausted: '5m',
      predictedExhaustion: '3h',
      burningTooFast: '1h',
      pollFailing: '15m',
      credentialsRejected: '10m',
      dataStale: '5m',
      exporterDown: '5m',
      exporterAbsent: '15m',
      apiKeyExpiring: '1h',
      configReloadFailed: '10m',
    },

    // `keep_firing_for:` (Prometheus >= 2.42): how long an alert keeps firing after its
    // expression stops returning it, e.g. while the exporter is down.
    keepFiringFor: {
      predictedExhaustion: '3h',
    },

    // runbook_url is this base + the alert name in lower case (a docs/runbooks.md anchor).
    runbookBaseURL: 'https://github.com/saas-quota-exporter/saas-quota-exporter/blob/main/docs/runbooks.md#',
    // dashboard_url is this base + /d/<uid>?<variables>: your Grafana.
    dashboardBaseURL: 'https://grafana.example.com',

    // Dashboards: the tags they carry and which data sources the ${datasource}
    // variable offers (a regex on the data source name; empty = every Prometheus).
    dashboardTags: ['saas-quota'],
    datasourceRegex: '',
  },
}
