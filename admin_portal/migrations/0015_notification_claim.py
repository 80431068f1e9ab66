from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("admin_portal", "0013_metric_counter")]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="claim",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
    ]
