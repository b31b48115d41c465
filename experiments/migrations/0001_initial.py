"""Experiments, roles, SLA records, templates and the audit trail, moved here from
requests_app: created in the migration state only, over the tables requests_app made
(they keep their names, ``db_table``); the content types follow, so permissions and
generic relations keep pointing at the same rows."""

import django.core.validators
import django.db.models.deletion
import experiments.models.experiments
from django.conf import settings
from django.db import migrations, models


MOVED_MODELS = [
    "experiment",
    "physicsgroup",
    "membership",
    "globalrole",
    "trainingrecord",
    "productioncode",
    "workflowtemplate",
    "stagetemplate",
    "auditevent",
]


def relabel_content_types(old: str, new: str):
    def run(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        for model in MOVED_MODELS:
            # A fresh database has no rows yet (post_migrate makes them under the new label);
            # one that already has the new label keeps it, and the old row stays to be
            # removed by remove_stale_contenttypes.
            if ContentType.objects.using(db).filter(app_label=new, model=model).exists():
                continue
            ContentType.objects.using(db).filter(app_label=old, model=model).update(
                app_label=new
            )

    return run


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('requests_app', '0013_experiment_batch_placement'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Experiment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('batch_partition', models.CharField(blank=True, db_default='', default='', max_length=200, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.@+-]{1,200}$', 'Letters, digits and _ . @ + - only (a batch system name).')], verbose_name='Slurm partition')),
                        ('batch_account', models.CharField(blank=True, db_default='', default='', help_text='Slurm account; HTCondor accounting group.', max_length=200, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.@+-]{1,200}$', 'Letters, digits and _ . @ + - only (a batch system name).')], verbose_name='batch account')),
                        ('batch_qos', models.CharField(blank=True, db_default='', default='', max_length=200, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9_.@+-]{1,200}$', 'Letters, digits and _ . @ + - only (a batch system name).')], verbose_name='Slurm QOS')),
                        ('batch_requirements', models.CharField(blank=True, db_default='', default='', help_text='A ClassAd expression the execute machines must match.', max_length=1000, validators=[django.core.validators.RegexValidator('^[^\\n\\r\\0]*$', 'One line: an HTCondor ClassAd expression.')], verbose_name='HTCondor requirements')),
                        ('slug', models.SlugField(max_length=49, unique=True, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9-]{0,48}$', 'Use lowercase letters, digits and dashes (at most 49).')])),
                        ('name', models.CharField(max_length=200)),
                        ('description', models.TextField(blank=True)),
                        ('sla_accepted_on', models.DateField(blank=True, help_text='When the experiment accepted the SLA.', null=True)),
                        ('sla_reference', models.CharField(blank=True, help_text='Document reference of the signed SLA.', max_length=200)),
                        ('default_backend', models.CharField(choices=[('local', 'Local processes'), ('slurm', 'Slurm'), ('htcondor', 'HTCondor')], default=experiments.models.experiments.configured_default_backend, help_text="Where its campaigns' jobs run unless a campaign says otherwise; new experiments start with the service's OPOS_DEFAULT_BACKEND.", max_length=16)),
                        ('job_quota', models.PositiveIntegerField(default=500, help_text='Maximum jobs of this experiment in flight at once.')),
                        ('sla_response_hours', models.PositiveIntegerField(db_default=24, default=24, help_text='SLA target: hours from a submitted ticket to the first operator response.')),
                        ('sla_approval_hours', models.PositiveIntegerField(db_default=120, default=120, help_text='SLA target: hours from a submitted ticket to its approval.')),
                        ('sla_first_job_hours', models.PositiveIntegerField(db_default=168, default=168, help_text='SLA target: hours from a submitted ticket to its first job running.')),
                        ('batch_avoid_partitions', models.CharField(blank=True, db_default='', default='', help_text="Slurm partitions this experiment's work must never run in, separated by commas.", max_length=1000, validators=[django.core.validators.RegexValidator('^([A-Za-z0-9_.@+-]{1,200}(\\s*,\\s*[A-Za-z0-9_.@+-]{1,200})*)?$', 'Partition names separated by commas.')], verbose_name='partitions to avoid')),
                        ('created', models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        'db_table': 'requests_app_experiment',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('action', models.CharField(db_index=True, max_length=40)),
                        ('target', models.CharField(help_text='What was changed, in words.', max_length=200)),
                        ('data', models.JSONField(blank=True, default=dict)),
                        ('created', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('experiment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='audit_events', to='experiments.experiment')),
                    ],
                    options={
                        'db_table': 'requests_app_auditevent',
                        'ordering': ['-created', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ProductionCode',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=120)),
                        ('version', models.CharField(max_length=60)),
                        ('kind', models.CharField(choices=[('script', 'Script'), ('config', 'Configuration')], default='script', max_length=16)),
                        ('location', models.CharField(help_text='Path or URL of the file.', max_length=500)),
                        ('sha256', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator('^[0-9a-f]{64}$', 'A sha256 is 64 lowercase hex digits.')])),
                        ('approved', models.BooleanField(default=False)),
                        ('approved_at', models.DateTimeField(blank=True, null=True)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('approved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='codes', to='experiments.experiment')),
                        ('owners', models.ManyToManyField(related_name='owned_code', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'production code',
                        'verbose_name_plural': 'production code',
                        'db_table': 'requests_app_productioncode',
                        'ordering': ['experiment__name', 'name', 'version'],
                    },
                ),
                migrations.CreateModel(
                    name='TrainingRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('held_on', models.DateField()),
                        ('topics', models.JSONField(default=list, help_text='Subset of submission, monitoring, data_handling.')),
                        ('notes', models.TextField(blank=True)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('attendees', models.ManyToManyField(blank=True, related_name='trainings_attended', to=settings.AUTH_USER_MODEL)),
                        ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='trainings', to='experiments.experiment')),
                        ('recorded_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'requests_app_trainingrecord',
                        'ordering': ['-held_on'],
                    },
                ),
                migrations.CreateModel(
                    name='WorkflowTemplate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=120)),
                        ('version', models.PositiveIntegerField(default=1)),
                        ('description', models.TextField(blank=True)),
                        ('completion_pct', models.PositiveSmallIntegerField(db_default=95, default=95, help_text='Force-complete threshold in percent (a campaign may override it).', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('updated', models.DateTimeField(auto_now=True)),
                        ('cloned_from', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='clones', to='experiments.workflowtemplate')),
                        ('experiment', models.ForeignKey(blank=True, help_text='Empty for a template shared by all experiments.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='templates', to='experiments.experiment')),
                    ],
                    options={
                        'db_table': 'requests_app_workflowtemplate',
                        'ordering': ['name', 'version'],
                    },
                ),
                migrations.CreateModel(
                    name='StageTemplate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('position', models.PositiveSmallIntegerField()),
                        ('name', models.CharField(max_length=60)),
                        ('parameters', models.JSONField(blank=True, default=dict)),
                        ('cores', models.PositiveSmallIntegerField(default=1, validators=[django.core.validators.MinValueValidator(1)])),
                        ('memory_mb', models.PositiveIntegerField(default=2000, validators=[django.core.validators.MinValueValidator(1)])),
                        ('walltime_s', models.PositiveIntegerField(default=3600, help_text='Estimated walltime per job.', validators=[django.core.validators.MinValueValidator(1)])),
                        ('split', models.CharField(choices=[('events', 'Events per job'), ('files', 'Files per job')], default='events', max_length=8)),
                        ('files_per_job', models.PositiveIntegerField(blank=True, null=True)),
                        ('code', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='stages', to='experiments.productioncode')),
                        ('input_stage', models.ForeignKey(blank=True, help_text='The stage whose output this one reads (none for generation).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='experiments.stagetemplate')),
                        ('template', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='stages', to='experiments.workflowtemplate')),
                    ],
                    options={
                        'db_table': 'requests_app_stagetemplate',
                        'ordering': ['template', 'position'],
                    },
                ),
                migrations.CreateModel(
                    name='GlobalRole',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('role', models.CharField(choices=[('operator', 'Operator'), ('admin', 'Administrator')], max_length=16)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='global_roles', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'requests_app_globalrole',
                        'constraints': [models.UniqueConstraint(fields=('user', 'role'), name='global_role_once'), models.CheckConstraint(condition=models.Q(('role__in', ['operator', 'admin'])), name='global_role_valid')],
                    },
                ),
                migrations.CreateModel(
                    name='Membership',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('role', models.CharField(choices=[('liaison', 'Liaison'), ('physicist', 'Physicist')], max_length=16)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='members', to='experiments.experiment')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'requests_app_membership',
                        'ordering': ['experiment__name', 'user__username'],
                        'constraints': [models.UniqueConstraint(fields=('user', 'experiment'), name='one_role_per_experiment'), models.CheckConstraint(condition=models.Q(('role__in', ['liaison', 'physicist'])), name='membership_role_valid')],
                    },
                ),
                migrations.CreateModel(
                    name='PhysicsGroup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('slug', models.SlugField(max_length=49, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9-]{0,48}$', 'Use lowercase letters, digits and dashes (at most 49).')])),
                        ('name', models.CharField(max_length=200)),
                        ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='groups', to='experiments.experiment')),
                    ],
                    options={
                        'db_table': 'requests_app_physicsgroup',
                        'ordering': ['experiment__name', 'name'],
                        'constraints': [models.UniqueConstraint(fields=('experiment', 'slug'), name='group_slug_per_experiment')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='productioncode',
                    constraint=models.UniqueConstraint(fields=('experiment', 'name', 'version'), name='code_version_once'),
                ),
                migrations.AddConstraint(
                    model_name='workflowtemplate',
                    constraint=models.UniqueConstraint(condition=models.Q(('experiment__isnull', False)), fields=('experiment', 'name', 'version'), name='template_version_once'),
                ),
                migrations.AddConstraint(
                    model_name='workflowtemplate',
                    constraint=models.UniqueConstraint(condition=models.Q(('experiment__isnull', True)), fields=('name', 'version'), name='shared_template_version_once'),
                ),
                migrations.AddConstraint(
                    model_name='stagetemplate',
                    constraint=models.UniqueConstraint(fields=('template', 'position'), name='stage_position_once'),
                ),
                migrations.AddConstraint(
                    model_name='stagetemplate',
                    constraint=models.UniqueConstraint(fields=('template', 'name'), name='stage_name_once'),
                ),
            ],
        ),
        migrations.RunPython(
            relabel_content_types('requests_app', 'experiments'),
            relabel_content_types('experiments', 'requests_app'),
        ),
    ]
