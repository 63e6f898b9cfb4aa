module mqttdemo/tests

go 1.25

replace (
	mqttdemo/mqttpublisher => ../mqttpublisher
	mqttdemo/mqttserver => ../mqttserver
	mqttdemo/mqttsubscriber => ../mqttsubscriber
	mqttdemo/shared => ../shared
)

require github.com/creack/pty v1.1.24
