// Alerting rules. Load them together with the recording rules (rules.libsonnet): the
// quota alerts read its recorded ratios, burn rates and forecasts.
//
// Thresholds are settings: each quota alert compares against the per-meter series the
// exporter exports from its config where that series exists, and against the default
// in _config where it does not. No expression names a vendor; a vendor's meter that
// runs out by design (VertaaUX's free tier, 3 audits a day) is switched off by the
// exporter exporting its thresholds, not by the rules.
//
//   saas_quota_alert_threshold_ratio{severity="warning"|"critical"}: the used share at
//     which SaasQuotaAlmostExhausted fires with that severity. A critical threshold
//     above 1 (e.g. +Inf) says the meter may run out: no SaasQuotaExhausted either.
//   saas_quota_alert_forecast_horizon_seconds: the forecast horizon of meters without a
//     reset; 0 switches SaasQuotaPredictedExhaustion and SaasQuotaBurningTooFast off,
//     and leaves SaasQuotaAlmostExhausted a plain level alert (no burn rate to judge).
local meter = 'on (job, instance, provider, account, meter)';
local account = 'on (job, instance, provider, account)';
local threshold(severity) = 'saas_quota_alert_threshold_ratio{severity="%s"}' % severity;
local horizon = 'saas_quota_alert_forecast_horizon_seconds';
// A number as PromQL text: 0.8, not jsonnet's 0.80000000000000004.
local num(x) = if std.isString(x) then x else std.format('%.15g', x);

// `series >= the meter's own threshold`, or `series >= default` for meters without one.
local atLeast(series, severity, default) = |||
  %(series)s
  >= %(meter)s group_left ()
  %(threshold)s
  or
  %(series)s >= %(default)s
  unless %(meter)s %(threshold)s
||| % { series: series, meter: meter, threshold: threshold(severity), default: num(default) };

// Annotations by alert; c is the mixin's _config.
local annotations(c) = {
  almostExhaustedAnnotations: {
    summary: "A SaaS quota is almost used up.",
    description: std.join(' ', [
      "{{ $labels.provider }} account {{ $labels.account }} has used {{ $value | humanizePercentage }} of its {{ $labels.meter }} quota",
      "{{- with printf `saas_quota_remaining{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }}",
      "{{- if match \"_bytes$\" $labels.meter }}; {{ . | first | value | humanize1024 }}B left",
      "{{- else if match \"_seconds$\" $labels.meter }}; {{ . | first | value | humanizeDuration }} left",
      "{{- else }}; {{ . | first | value | humanize }} left{{ end }}{{ end }}",
      "{{- with printf `saas_quota_reset_timestamp_seconds{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }}; it resets at {{ . | first | value | humanizeTimestamp }}",
      "{{- else }}; the vendor reports no reset time{{ end }}.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaalmostexhausted",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-account?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}&var-meter={{ $labels.meter }}",
  },
  exhaustedAnnotations: {
    summary: "A SaaS quota is used up.",
    description: std.join(' ', [
      "{{ $labels.provider }} account {{ $labels.account }} has no {{ $labels.meter }} quota left ({{ $value | humanizePercentage }} of the limit used)",
      "{{- with printf `saas_quota_reset_timestamp_seconds{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }}; it resets at {{ . | first | value | humanizeTimestamp }}",
      "{{- else }}; the vendor reports no reset time{{ end }}.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaexhausted",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-account?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}&var-meter={{ $labels.meter }}",
  },
  predictedExhaustionAnnotations: {
    summary: "A SaaS quota is forecast to run out.",
    description: std.join(' ', [
      "At its recent burn rate {{ $labels.provider }} account {{ $labels.account }} uses up its {{ $labels.meter }} quota in {{ $value | humanizeDuration }}",
      "{{- with printf `saas_quota_reset_timestamp_seconds{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }}, before it resets at {{ . | first | value | humanizeTimestamp }}",
      "{{- else }}; the vendor reports no reset for this meter, so only a larger plan or a top-up adds quota{{ end }}",
      "{{- with printf `provider_account_meter:saas_quota_used_per_limit:ratio{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }} ({{ . | first | value | humanizePercentage }} used so far){{ end }}.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotapredictedexhaustion",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-account?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}&var-meter={{ $labels.meter }}",
  },
  burningTooFastAnnotations: {
    summary: "A SaaS quota is being used faster than its period allows.",
    description: std.join(' ', [
      "{{ $labels.provider }} account {{ $labels.account }} has used {{ $value | humanizePercentage }} of its {{ $labels.meter }} quota",
      "{{- with printf `provider_account_meter:saas_quota_period_elapsed:ratio{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }} with only {{ . | first | value | humanizePercentage }} of the period elapsed{{ end }}",
      "{{- with printf `saas_quota_reset_timestamp_seconds{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\",meter=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account $labels.meter | query }}; at this average pace it runs out before the period ends at {{ . | first | value | humanizeTimestamp }}{{ end }}.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaburningtoofast",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-account?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}&var-meter={{ $labels.meter }}",
  },
  pollFailingAnnotations: {
    summary: "The exporter cannot read a SaaS account's quota.",
    description: std.join(' ', [
      "Polls of {{ $labels.provider }} account {{ $labels.account }} have failed for 15 minutes; its last good values are served until they are older than max_staleness, then dropped. Failed polls in the last 15 minutes by reason: {{ with printf `round(increase(saas_quota_poll_errors_total{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\"}[15m])) > 0` $labels.job $labels.instance $labels.provider $labels.account | query | sortByLabel \"reason\" }}",
      "{{- range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s.Labels.reason }} {{ $s.Value | humanize }}{{ end }}",
      "{{- else }}none counted{{ end }}.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotapollfailing",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}",
  },
  credentialsRejectedAnnotations: {
    summary: "A SaaS vendor rejects an API key.",
    description: std.join(' ', [
      "{{ $labels.provider }} rejected the API key of account {{ $labels.account }} ({{ $labels.reason }}, {{ $value | humanize }} failed polls in 15 minutes). The applications that use the same key are probably failing too.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotacredentialsrejected",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}",
  },
  dataStaleAnnotations: {
    summary: "A SaaS account's quota data is stale.",
    description: std.join(' ', [
      "The last successful poll of {{ $labels.provider }} account {{ $labels.account }} was {{ $value | humanizeDuration }} ago. Values older than max_staleness are no longer exported, so the quota alerts cannot see this account.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotadatastale",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}",
  },
  exporterDownAnnotations: {
    summary: "saas-quota-exporter cannot be scraped.",
    description: std.join(' ', [
      "Prometheus cannot scrape saas-quota-exporter at {{ $labels.instance }} (job {{ $labels.job }}); no quota alert can fire for its accounts while it is down.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaexporterdown",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter",
  },
  exporterAbsentAnnotations: {
    summary: "Prometheus has no saas-quota-exporter target.",
    description: std.join(' ', [
      "Prometheus has had no target in job {{ $labels.job }} for 15 minutes, so it scrapes no SaaS quotas at all and no quota alert can fire.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaexporterabsent",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter",
  },
  apiKeyExpiringAnnotations: {
    summary: "A SaaS API key expires soon.",
    description: std.join(' ', [
      "The API key of {{ $labels.provider }} account {{ $labels.account }} expires in {{ $value | humanizeDuration }}",
      "{{- with printf `saas_quota_api_key_expiry_timestamp_seconds{job=\"%s\",instance=\"%s\",provider=\"%s\",account=\"%s\"}` $labels.job $labels.instance $labels.provider $labels.account | query }} (at {{ . | first | value | humanizeTimestamp }}){{ end }}. Rotate it before then, in the applications and in the exporter's config.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaapikeyexpiring",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-account?var-provider={{ $labels.provider }}&var-account={{ $labels.account }}",
  },
  configReloadFailedAnnotations: {
    summary: "saas-quota-exporter failed to load its configuration.",
    description: std.join(' ', [
      "saas-quota-exporter at {{ $labels.instance }} could not load its configuration file and keeps running on the last good one. Its log lists every error with its location.",
    ]),
    runbook_url: c.runbookBaseURL + "saasquotaconfigreloadfailed",
    dashboard_url: c.dashboardBaseURL + "/d/saas-quota-exporter",
  },
};

// The meters whose rest does not last: at the recent burn rate times `margin`, what is
// left runs out before the meter's reset (for meters without one, within its forecast
// horizon: the recorded effective horizon is either). Tuned with benchmarks/backtest.py:
//  - "recent" is the 7-day rate, a whole weekly cycle: the 1h and 6h rates, even when
//    both must agree, cry wolf on the noise of a steady burn that ends at 97 % at the
//    reset, and flap on a lifetime meter near its horizon;
//  - the 1h and 6h rates (both) still count where the 7-day one cannot: for a meter
//    with under 6 days of history, because rate() over 7 days divides by the whole
//    window and under-reads it (a new exporter, a new account); and for a burn so fast
//    that they use up the rest within `fast`, which a week's average takes days to
//    show (far from any reset, so no noise crosses it);
//  - a flat meter has no time to exhaustion, so it lasts, however high its share; one
//    with nothing left (used share 1 or more) has not lasted;
//  - a meter whose forecast is off (horizon 0, so no effective horizon) is included
//    whatever it burns: for it the threshold alert stays a plain level alert.
local doesNotLast(ratio, margin, fast) = |||
  (
    provider_account_meter:saas_quota_seconds_to_exhaustion:rate7d
    < %(meter)s (%(budget)s * %(margin)s)
    or %(meter)s
    (
      provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h
      < %(meter)s (%(budget)s * %(margin)s)
      and %(meter)s
      provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h
      < %(meter)s (%(budget)s * %(margin)s)
      and %(meter)s
      (
        provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h < %(fast)s
        and %(meter)s
        provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h < %(fast)s
        or %(meter)s
        (%(ratio)s unless %(meter)s count_over_time(saas_quota_used[1h] offset 6d))
      )
    )
    or %(meter)s
    %(ratio)s >= 1
    or %(meter)s
    (%(ratio)s unless %(meter)s %(budget)s)
  )
||| % {
  meter: meter,
  ratio: ratio,
  budget: 'provider_account_meter:saas_quota_forecast_horizon_seconds:effective',
  margin: num(margin),
  fast: num(fast),
};

// Every line of `text` indented by two spaces.
local indent(text) = std.join('\n', [if line == '' then '' else '  ' + line for line in std.split(text, '\n')]);

{
  local cfg = $._config,
  local ratio = 'provider_account_meter:saas_quota_used_per_limit:ratio',
  local almostExhausted(severity, default) = {
    alert: 'SaasQuotaAlmostExhausted',
    // The used share is at its threshold AND the rest will not last (doesNotLast):
    // a high share that the reset will wipe before it runs out is no news.
    expr: '(\n%s)\nand %s\n%s' % [
      indent(atLeast(ratio, severity, default)),
      meter,
      doesNotLast(ratio, cfg.almostExhaustedBurnMargin, cfg.fastForecastSeconds),
    ],
    'for': cfg['for'].almostExhausted,
    labels: { severity: severity },
    annotations: annotations(cfg).almostExhaustedAnnotations,
  },

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'saas-quota.alerts',
        rules: [
          almostExhausted('warning', cfg.almostExhaustedWarning),
          almostExhausted('critical', cfg.almostExhaustedCritical),
          {
            alert: 'SaasQuotaExhausted',
            expr: |||
              (
                %(ratio)s >= %(exhausted)s
                or
                1 - saas_quota_remaining / (saas_quota_limit > 0) >= %(exhausted)s
              )
              unless %(meter)s (%(critical)s > 1)
            ||| % { ratio: ratio, exhausted: num(cfg.exhausted), meter: meter, critical: threshold('critical') },
            'for': cfg['for'].exhausted,
            labels: { severity: 'critical' },
            annotations: annotations(cfg).exhaustedAnnotations,
          },
          {
            // The forecast, tuned with benchmarks/backtest.py on 30-day traces:
            //  - it starts when the 7-day burn rate (a whole weekly cycle) AND the
            //    current 1h and 6h rates all use up what is left within the horizon
            //    (until the reset, or the horizon for meters without one): the long
            //    rate rejects weekday peaks, the short ones a burst that has stopped;
            //  - once firing it holds while the 7-day rate alone still says so
            //    (hysteresis through its own ALERTS series), so weekends, nights and
            //    quiet hours do not resolve it and re-fire it the next morning;
            //  - a burn so fast that the 1h and 6h rates use up the rest within
            //    fastForecastSeconds fires on its own, without waiting for the week;
            //  - keep_firing_for bridges exporter outages, whose missing samples
            //    would otherwise end the episode and start another one.
            alert: 'SaasQuotaPredictedExhaustion',
            expr: |||
              (
                provider_account_meter:saas_quota_seconds_to_exhaustion:rate7d > 0
                < %(meter)s %(horizon)s
                and %(meter)s
                (
                  provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h > 0
                  < %(meter)s %(horizon)s
                  and %(meter)s
                  provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h
                  < %(meter)s %(horizon)s
                  or %(meter)s
                  ALERTS{alertname="SaasQuotaPredictedExhaustion", alertstate="firing"}
                )
              )
              or
              (
                provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h > 0 < %(fast)s
                < %(meter)s %(horizon)s
                and %(meter)s
                provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h < %(fast)s
                < %(meter)s %(horizon)s
              )
            ||| % {
              meter: meter,
              horizon: 'provider_account_meter:saas_quota_forecast_horizon_seconds:effective',
              fast: num(cfg.fastForecastSeconds),
            },
            'for': cfg['for'].predictedExhaustion,
            keep_firing_for: cfg.keepFiringFor.predictedExhaustion,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).predictedExhaustionAnnotations,
          },
          {
            alert: 'SaasQuotaBurningTooFast',
            expr: |||
              %(ratio)s
              >= %(meter)s
              (provider_account_meter:saas_quota_period_elapsed:ratio + %(margin)s)
              unless %(meter)s (%(horizon)s == 0)
            ||| % { ratio: ratio, meter: meter, margin: num(cfg.paceMargin), horizon: horizon },
            'for': cfg['for'].burningTooFast,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).burningTooFastAnnotations,
          },
          {
            alert: 'SaasQuotaPollFailing',
            expr: 'saas_quota_up == 0',
            'for': cfg['for'].pollFailing,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).pollFailingAnnotations,
          },
          {
            alert: 'SaasQuotaCredentialsRejected',
            expr: |||
              round(increase(saas_quota_poll_errors_total{reason=~"auth|forbidden"}[15m])) > 0
              and %(account)s saas_quota_up == 0
            ||| % { account: account },
            'for': cfg['for'].credentialsRejected,
            labels: { severity: 'critical' },
            annotations: annotations(cfg).credentialsRejectedAnnotations,
          },
          {
            alert: 'SaasQuotaDataStale',
            expr: 'time() - saas_quota_last_success_timestamp_seconds > %s' % num(cfg.staleAfterSeconds),
            'for': cfg['for'].dataStale,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).dataStaleAnnotations,
          },
          {
            alert: 'SaasQuotaExporterDown',
            expr: 'up{%s} == 0' % cfg.exporterSelector,
            'for': cfg['for'].exporterDown,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).exporterDownAnnotations,
          },
          {
            alert: 'SaasQuotaExporterAbsent',
            expr: 'absent(up{%s})' % cfg.exporterSelector,
            'for': cfg['for'].exporterAbsent,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).exporterAbsentAnnotations,
          },
          {
            alert: 'SaasQuotaApiKeyExpiring',
            expr: 'saas_quota_api_key_expiry_timestamp_seconds - time() < %s' % num(cfg.keyExpiryWarningSeconds),
            'for': cfg['for'].apiKeyExpiring,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).apiKeyExpiringAnnotations,
          },
          {
            alert: 'SaasQuotaConfigReloadFailed',
            expr: 'saas_quota_config_last_reload_successful == 0',
            'for': cfg['for'].configReloadFailed,
            labels: { severity: 'warning' },
            annotations: annotations(cfg).configReloadFailedAnnotations,
          },
        ],
      },
    ],
  },
}
