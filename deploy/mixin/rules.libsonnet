// Recording rules. Names follow `level:metric:operations`. The level
// `provider_account_meter` means one output series per scraped meter: nothing is
// aggregated away, so every output keeps job, instance, provider, account and meter and
// joins one-to-one with the exporter's own series.
//
// Every rule covers only meters with a positive cap (`saas_quota_limit > 0`):
//   - unlimited or unknown caps have no saas_quota_limit series, so they produce no
//     output at all (not 0, not NaN);
//   - a cap of 0 is a real cap ("not in your plan") but there is nothing to divide by;
//     the `> 0` guard (kubernetes-mixin's `(hard > 0)`) drops it instead of producing
//     +Inf or NaN.
//
// The 1h and 6h burn rates use deriv() over a gauge: `used` drops when a window
// resets, the slope across a reset is negative and is clamped to 0 (consumption is
// never negative), so they pause for up to one window after a reset. The 7-day burn
// rate, which the forecast alert relies on, must not pause for a week after every
// reset, so for meters with a reset time it is rate(): within a window `used` only
// grows, and a window reset is exactly a counter reset (the drop is ignored, the usage
// after it counts). Meters without a reset (lifetime or capacity quotas) may shrink
// (files deleted), so theirs stays a clamped deriv(). A burn rate of 0 gives no
// time-to-exhaustion series (never +Inf).
local meter = 'on (job, instance, provider, account, meter)';
{
  prometheusRules+:: {
    groups+: [
      {
        name: 'saas-quota.rules',
        rules: [
          {
            // Share of the cap used: 0.5 = half used, 1 = exhausted, > 1 = overage.
            record: 'provider_account_meter:saas_quota_used_per_limit:ratio',
            expr: 'saas_quota_used / (saas_quota_limit > 0)',
          },
          {
            // Burn rate in the meter's unit per second over the last hour ("current").
            record: 'provider_account_meter:saas_quota_used:deriv1h',
            expr: 'clamp_min(deriv(saas_quota_used[1h]), 0) and (saas_quota_limit > 0)',
          },
          {
            // Burn rate over the last six hours ("sustained"); damps short bursts.
            record: 'provider_account_meter:saas_quota_used:deriv6h',
            expr: 'clamp_min(deriv(saas_quota_used[6h]), 0) and (saas_quota_limit > 0)',
          },
          {
            // Seconds until remaining reaches 0 at the current (1h) burn rate.
            record: 'provider_account_meter:saas_quota_seconds_to_exhaustion:deriv1h',
            expr: 'saas_quota_remaining / (provider_account_meter:saas_quota_used:deriv1h > 0)',
          },
          {
            // Seconds until remaining reaches 0 at the sustained (6h) burn rate.
            record: 'provider_account_meter:saas_quota_seconds_to_exhaustion:deriv6h',
            expr: 'saas_quota_remaining / (provider_account_meter:saas_quota_used:deriv6h > 0)',
          },
          {
            // Burn rate over the last seven days ("long"): a whole weekly cycle, so
            // weekends and quiet nights neither hide nor exaggerate it (benchmarks/
            // backtest.py). rate() for windowed meters, clamped deriv() for the rest.
            record: 'provider_account_meter:saas_quota_used:rate7d',
            expr: |||
              (
                rate(saas_quota_used[7d]) and %(meter)s saas_quota_reset_timestamp_seconds
                or
                clamp_min(deriv(saas_quota_used[7d]), 0)
              )
              and (saas_quota_limit > 0)
            ||| % { meter: meter },
          },
          {
            // Seconds until remaining reaches 0 at the 7-day burn rate.
            record: 'provider_account_meter:saas_quota_seconds_to_exhaustion:rate7d',
            expr: 'saas_quota_remaining / (provider_account_meter:saas_quota_used:rate7d > 0)',
          },
          {
            // How far ahead SaasQuotaPredictedExhaustion looks, in seconds: until the
            // reset where the meter has one; otherwise the meter's own
            // saas_quota_alert_forecast_horizon_seconds, or the default. No series for
            // a meter whose horizon is 0 (forecast alerts switched off).
            record: 'provider_account_meter:saas_quota_forecast_horizon_seconds:effective',
            expr: |||
              (
                (saas_quota_reset_timestamp_seconds - time())
                or %(meter)s saas_quota_alert_forecast_horizon_seconds
                or %(meter)s (saas_quota_limit * 0 + %(default)s)
              )
              and (saas_quota_limit > 0)
              unless %(meter)s (saas_quota_alert_forecast_horizon_seconds == 0)
            ||| % { meter: meter, default: std.format('%.15g', $._config.forecastHorizonSeconds) },
          },
          {
            // Share of the current window that has elapsed (0..1), where the vendor
            // reports both the window start and its reset. Compared with the used
            // ratio, it says whether usage is ahead of the pace the window allows.
            record: 'provider_account_meter:saas_quota_period_elapsed:ratio',
            expr: |||
              clamp(
                (time() - saas_quota_period_start_timestamp_seconds)
                / ((saas_quota_reset_timestamp_seconds - saas_quota_period_start_timestamp_seconds) > 0),
                0, 1
              )
              and (saas_quota_limit > 0)
            |||,
          },
        ],
      },
    ],
  },
}
