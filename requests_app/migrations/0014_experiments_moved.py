"""The models moved to ``experiments`` leave requests_app's migration state; their tables
and rows stay where they are (state only). Requests' foreign keys now name them there."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0015_experiments_moved'),
        ('monitoring', '0005_experiments_moved'),
        ('experiments', '0001_initial'),
        ('requests_app', '0013_experiment_batch_placement'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveField(
                    model_name='productioncode',
                    name='experiment',
                ),
                migrations.RemoveField(
                    model_name='workflowtemplate',
                    name='experiment',
                ),
                migrations.AlterField(
                    model_name='requestcounter',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='experiments.experiment'),
                ),
                migrations.RemoveField(
                    model_name='physicsgroup',
                    name='experiment',
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='experiment',
                ),
                migrations.RemoveField(
                    model_name='trainingrecord',
                    name='experiment',
                ),
                migrations.AlterField(
                    model_name='productionrequest',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='experiments.experiment'),
                ),
                migrations.RemoveField(
                    model_name='globalrole',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='user',
                ),
                migrations.AlterField(
                    model_name='productionrequest',
                    name='physics_group',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='requests', to='experiments.physicsgroup'),
                ),
                migrations.RemoveField(
                    model_name='productioncode',
                    name='approved_by',
                ),
                migrations.RemoveField(
                    model_name='productioncode',
                    name='owners',
                ),
                migrations.RemoveField(
                    model_name='stagetemplate',
                    name='code',
                ),
                migrations.RemoveField(
                    model_name='stagetemplate',
                    name='input_stage',
                ),
                migrations.RemoveField(
                    model_name='stagetemplate',
                    name='template',
                ),
                migrations.RemoveField(
                    model_name='trainingrecord',
                    name='attendees',
                ),
                migrations.RemoveField(
                    model_name='trainingrecord',
                    name='recorded_by',
                ),
                migrations.RemoveField(
                    model_name='workflowtemplate',
                    name='cloned_from',
                ),
                migrations.AlterField(
                    model_name='sample',
                    name='template',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='samples', to='experiments.workflowtemplate'),
                ),
                migrations.DeleteModel(
                    name='AuditEvent',
                ),
                migrations.DeleteModel(
                    name='Experiment',
                ),
                migrations.DeleteModel(
                    name='GlobalRole',
                ),
                migrations.DeleteModel(
                    name='Membership',
                ),
                migrations.DeleteModel(
                    name='PhysicsGroup',
                ),
                migrations.DeleteModel(
                    name='ProductionCode',
                ),
                migrations.DeleteModel(
                    name='StageTemplate',
                ),
                migrations.DeleteModel(
                    name='TrainingRecord',
                ),
                migrations.DeleteModel(
                    name='WorkflowTemplate',
                ),
            ],
        ),
    ]
