module runhook.example/plugin

go 1.24
