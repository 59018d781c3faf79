package appliance

import "github.com/prometheus/client_golang/prometheus"

// storeCollector reports the store's size and health at each scrape.
type storeCollector struct {
	a       *App
	bytes   *prometheus.Desc
	healthy *prometheus.Desc
}

func (a *App) storeMetrics() prometheus.Collector {
	return &storeCollector{
		a:       a,
		bytes:   prometheus.NewDesc("sealpost_store_bytes", "Bytes on disk of the encrypted store, by part.", []string{"part"}, nil),
		healthy: prometheus.NewDesc("sealpost_store_healthy", "1 while writes can be made durable, 0 after a failed fsync.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.healthy
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	tree, valueLog := c.a.store.Size()
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(tree), "tree")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(valueLog), "value_log")
	healthy := 1.0
	if c.a.store.Healthy() != nil {
		healthy = 0
	}
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy)
}
